/**
 * Lets plain `node` run these TypeScript sources directly (Node 24 strips types by itself): the
 * sources import each other as `./x.js`, the name they have once built, so a `.js` that does not
 * exist is looked up as `.ts`. Only for child processes of tests and for the store benchmark;
 * the shipped server runs the built dist/.
 */
import { registerHooks } from 'node:module';

registerHooks({
  resolve(specifier, context, nextResolve) {
    try {
      return nextResolve(specifier, context);
    } catch (err) {
      if (!(specifier.startsWith('.') && specifier.endsWith('.js'))) throw err;
      return nextResolve(`${specifier.slice(0, -'.js'.length)}.ts`, context);
    }
  },
});
