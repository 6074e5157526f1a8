//! The daemon protocol's frames: `[kind: u8][len: u32 LE][payload]` (docs/daemon-protocol.md).
//! Pure encode/decode, no I/O.

/// Protocol version carried by both sides' HELLO; bump on any incompatible change.
pub const VERSION: u8 = 1;
