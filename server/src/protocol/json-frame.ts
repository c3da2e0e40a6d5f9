/** Bytes of a WebSocket text frame and the shape checks every parser of frames needs. */

/** A frame as ws hands it over: one Buffer, an ArrayBuffer, or fragments. */
export type FrameData = Buffer | ArrayBuffer | Buffer[];

/** A frame's bytes as one Buffer (ws hands over fragments as an array). */
export function frameBytes(data: FrameData): Buffer {
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
}

/** A JSON object (not an array, not null): what every frame of the protocol must be. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
