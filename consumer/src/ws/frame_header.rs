//! The WebSocket framing of the messages a dashboard socket sends (RFC 6455, 5.2):
//! the header before each text frame or fragment of one.

use actix_web::web::{Bytes, BytesMut};

/// A server's WebSocket frame of `payload`, part of a text message (RFC 6455, 5.2):
/// opcode 1 if it is the `first` fragment, else 0 (continuation), FIN if it is the
/// `last`, no mask, the length in 7, 16 or 64 bits. Written here rather than by
/// actix-http's codec, which cannot write a fragment from a slice and which this
/// crate does not depend on.
pub(crate) fn ws_frame(first: bool, last: bool, payload: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(payload.len() + MAX_HEADER);
    write_header(&mut frame, first, last, payload.len());
    frame.extend_from_slice(payload);
    frame.freeze()
}

/// The longest header [`write_header`] writes.
pub(crate) const MAX_HEADER: usize = 10;

/// Appends the header of a [`ws_frame`] whose payload is `len` bytes long.
pub(crate) fn write_header(frame: &mut BytesMut, first: bool, last: bool, len: usize) {
    frame.extend_from_slice(&[u8::from(last) << 7 | u8::from(first)]);
    match len {
        // as: each arm's range fits the type it is cast to.
        len @ 0..=125 => frame.extend_from_slice(&[len as u8]),
        len @ 126..=0xFFFF => {
            frame.extend_from_slice(&[126]);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.extend_from_slice(&[127]);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_message_is_one_final_text_frame_with_its_length() {
        assert_eq!(&ws_frame(true, true, b"hi")[..], b"\x81\x02hi");
        let medium = ws_frame(true, true, &[b'a'; 300]);
        assert_eq!(&medium[..4], &[0x81, 126, 0x01, 0x2C]);
        assert_eq!(medium.len(), 4 + 300);
        let large = ws_frame(true, true, &[b'a'; 70_000]);
        assert_eq!(&large[..2], &[0x81, 127]);
        assert_eq!(&large[2..10], &70_000u64.to_be_bytes());
    }

    #[test]
    fn fragments_are_a_text_frame_then_continuations_the_last_one_final() {
        assert_eq!(ws_frame(true, false, b"a")[0], 0x01);
        assert_eq!(ws_frame(false, false, b"b")[0], 0x00);
        assert_eq!(ws_frame(false, true, b"c")[0], 0x80);
    }
}
