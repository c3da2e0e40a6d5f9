/** What server and client share: the protocol's constants, types, payloads, checks and error catalog. */
export {
  CloseCode,
  ERROR_CATALOG,
  ErrorCode,
  RegistryError,
  isErrorCode,
  isProtocolCode,
  type AnyErrorCode,
  type ClientErrorCode,
  type ErrorSource,
  type ErrorSpec,
  type IdentityErrorCode,
  type RegistryErrorOptions,
  type SocksErrorCode,
  type StoreErrorCode,
} from './errors.js';
export { parseOnionAddress, onionAddressFromPublicKey, type OnionAddress } from './onion-address.js';
export {
  PROTOCOL_VERSION,
  NICKNAME_PATTERN,
  FEATURES,
  type ClaimInfo,
  type HelloLimits,
  type KeyType,
  type PeerRecord,
  type ServerMessage,
} from './messages.js';
export { addressProofPayload, keyDigest, registrationPayload } from './signing.js';
export { decodeAddressProof, verifyAddressProof } from './address-proof.js';
