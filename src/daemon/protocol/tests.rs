//! Frame encode/decode, including truncated, oversized and foreign input.

use super::*;
use crate::core::WriteFlags;

fn head() -> ResponseHead {
    ResponseHead {
        status: 404,
        status_line: "404 Not Found".into(),
        headers: vec![("Content-Type".into(), "text/plain".into()), ("X-Len".into(), "v".into())],
        content_length: Some(9),
    }
}

#[test]
fn frames_split_and_refuse_truncation() {
    let mut buf = Vec::new();
    frame(&mut buf, Kind::Body, b"hello");
    frame(&mut buf, Kind::End, b"");
    let (k, p, rest) = split_frame(&buf).unwrap().unwrap();
    assert_eq!((k, p), (Kind::Body, &b"hello"[..]));
    let (k, p, rest) = split_frame(rest).unwrap().unwrap();
    assert_eq!((k, p, rest), (Kind::End, &b""[..], &b""[..]));
    // Every strict prefix of a frame is "need more", never a frame.
    for n in 0..HEADER_LEN + 5 {
        assert_eq!(split_frame(&buf[..n]).unwrap(), None, "prefix of {n} bytes");
    }
}

#[test]
fn oversized_and_unknown_frames_are_refused() {
    let mut h = header(Kind::Body, 0);
    h[1..5].copy_from_slice(&(MAX_PAYLOAD as u32 + 1).to_le_bytes());
    let e = parse_header(&h).unwrap_err();
    assert!(e.0.contains("Body frame of 262145 bytes"), "{e}");
    let mut h = header(Kind::End, 0);
    h[1] = 1;
    assert!(parse_header(&h).is_err(), "END carries no payload");
    let e = parse_header(&[0x7f, 0, 0, 0, 0]).unwrap_err();
    assert_eq!(e.0, "unknown frame kind 0x7f");
    // A length of 4 GiB is refused from the header alone, before anything is buffered.
    assert!(split_frame(&[Kind::Data as u8, 0xff, 0xff, 0xff, 0xff]).is_err());
    assert_eq!(parse_header(&header(Kind::Request, MAX_META_PAYLOAD)).unwrap(), (Kind::Request, MAX_META_PAYLOAD));
}

#[test]
fn hello_checks_magic_and_version() {
    let h = Hello::ours(1234);
    let back = Hello::decode(&h.encode()).unwrap();
    assert_eq!(back, h);
    assert!(back.build.starts_with("oxwsgi "));
    let mut other = h.encode();
    other[6] = VERSION + 1;
    let e = Hello::decode(&other).unwrap_err();
    assert!(e.0.contains("same build"), "{e}");
    assert!(Hello::decode(b"GET / HTTP/1.1\r\n\r\n").unwrap_err().0.contains("not an oxwsgi"));
    assert!(Hello::decode(&h.encode()[..10]).is_err());
}

#[test]
fn head_round_trips_and_rejects_bad_input() {
    let h = head();
    let mut p = Vec::new();
    encode_head(&h, &mut p);
    assert_eq!(decode_head(&p).unwrap(), h);
    for n in 0..p.len() {
        assert!(decode_head(&p[..n]).is_err(), "prefix of {n} bytes decoded");
    }
    let mut longer = p.clone();
    longer.push(0);
    assert!(decode_head(&longer).unwrap_err().0.contains("trailing"));
    // A header value with CR LF is refused even though the daemon should never send one.
    let mut evil = h.clone();
    evil.headers.push(("X-Evil".into(), "a\r\nSet-Cookie: x=1".into()));
    let mut p = Vec::new();
    encode_head(&evil, &mut p);
    assert!(decode_head(&p).is_err());
    // A status line that disagrees with the status.
    let mut lie = h.clone();
    lie.status = 200;
    let mut p = Vec::new();
    encode_head(&lie, &mut p);
    assert!(decode_head(&p).unwrap_err().0.contains("does not match"));
    // A header count larger than the bytes could hold.
    let mut p = Vec::new();
    encode_head(&ResponseHead { headers: vec![], ..h }, &mut p);
    let at = p.len() - 4;
    p[at..].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(decode_head(&p).unwrap_err().0.contains("count"));
}

#[test]
fn small_payloads_round_trip() {
    let f = WriteFlags { flush: true, last: false };
    assert_eq!(decode_file(&encode_file(7, 1 << 40, f)).unwrap(), (7, 1 << 40, f));
    assert!(decode_file(&[0; 16]).is_err());
    assert_eq!(decode_fail(&encode_fail(504, "request-timeout")).unwrap(), (504, "request-timeout".into()));
    assert!(decode_fail(&[1]).is_err());
    assert!(decode_fail(&encode_fail(7, "")).is_err());
    assert_eq!(decode_read(&65536u32.to_le_bytes()).unwrap(), 65536);
    assert!(decode_read(&0u32.to_le_bytes()).is_err());
    assert!(decode_read(&(MAX_PAYLOAD as u32 + 1).to_le_bytes()).is_err());
    let p = data_prefix(3, WriteFlags { flush: false, last: true });
    assert_eq!(parse_header(p[..5].try_into().unwrap()).unwrap(), (Kind::Data, 4));
    assert_eq!(write_flags(p[5]), WriteFlags { flush: false, last: true });
}
