//! Golden tests of SPDY/3.1 frames. Control and DATA frames without
//! headers are written out by hand from the SPDY/3.1 draft's layouts;
//! header blocks come from other implementations: node-spdy's parser tests
//! and C zlib (Python's `zlib.compressobj(9, zdict=…)` with
//! `Z_SYNC_FLUSH`, as Go's compress/zlib does), never from this module.

use bytes::{Bytes, BytesMut};
use tokio::io::duplex;

use super::frame::{Frame, FrameDecoder, FrameEncoder, FrameError, rst};
use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn encode(frames: &[Frame]) -> Vec<u8> {
    let mut encoder = FrameEncoder::new().expect("encoder");
    let mut out = BytesMut::new();
    for frame in frames {
        encoder.encode(frame, &mut out).expect("encode");
    }
    out.to_vec()
}

fn decode_all(bytes: &[u8]) -> Vec<Frame> {
    let mut decoder = FrameDecoder::new();
    let mut buf = BytesMut::from(bytes);
    let mut frames = Vec::new();
    while let Some(frame) = decoder.decode(&mut buf).expect("decode") {
        frames.push(frame);
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    frames
}

fn headers(pairs: &[(&str, &str)]) -> Headers {
    let mut h = Headers::new();
    for (n, v) in pairs {
        h.add(n, *v);
    }
    h
}

/// Frames without header blocks, byte for byte.
const FIXED: &[(&str, &str)] = &[
    // RST_STREAM: 0x8003 0x0003, flags 0, length 8, stream 3, CANCEL (5).
    ("rst_stream", "80030003000000080000000300000005"),
    // PING: type 6, length 4, id 1.
    ("ping", "800300060000000400000001"),
    // GOAWAY: type 7, length 8, last good stream 7, status OK.
    ("goaway", "800300070000000800000007 00000000"),
    // WINDOW_UPDATE: type 9, length 8, stream 1, delta 65536.
    ("window_update", "80030009000000080000000100010000"),
    // SETTINGS: type 4, length 4 + 8, one entry: flag PERSIST_VALUE (1),
    // id MAX_CONCURRENT_STREAMS (4), value 100.
    ("settings", "800300040000000c000000010100000400000064"),
    // DATA: stream 1, FLAG_FIN, length 5, "hello".
    ("data", "00000001010000056865 6c6c6f"),
    // DATA: an empty FIN, spdystream's Close().
    ("data_fin", "0000000501000000"),
];

fn fixed_frame(name: &str) -> Frame {
    match name {
        "rst_stream" => Frame::RstStream {
            stream_id: 3,
            status: rst::CANCEL,
        },
        "ping" => Frame::Ping { id: 1 },
        "goaway" => Frame::GoAway {
            last_good_stream_id: 7,
            status: 0,
        },
        "window_update" => Frame::WindowUpdate {
            stream_id: 1,
            delta: 65536,
        },
        "settings" => Frame::Settings {
            entries: vec![(1, 4, 100)],
        },
        "data" => Frame::Data {
            stream_id: 1,
            fin: true,
            data: Bytes::from_static(b"hello"),
        },
        "data_fin" => Frame::Data {
            stream_id: 5,
            fin: true,
            data: Bytes::new(),
        },
        other => panic!("no frame {other}"),
    }
}

#[test]
fn frames_without_headers_match_the_spec_layouts() {
    for (name, golden) in FIXED {
        let golden = hex(&golden.replace(' ', ""));
        let frame = fixed_frame(name);
        assert_eq!(encode(std::slice::from_ref(&frame)), golden, "{name}");
        assert_eq!(decode_all(&golden), vec![frame], "{name}");
    }
}

#[test]
fn node_spdy_syn_stream_and_syn_reply_decode() {
    // From node-spdy's parser tests: a SYN_STREAM for ":method: GET",
    // ":path: /" and an empty SYN_REPLY, each starting its own zlib stream.
    let syn = hex(
        "800300010000002c0000000100000000000078f9e3c6a7c202e50e507ab442a45a77d71050\
         06b32a4804974d8cfa00000000ffff",
    );
    assert_eq!(
        decode_all(&syn),
        vec![Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 0,
            fin: false,
            unidirectional: false,
            headers: headers(&[(":method", "GET"), (":path", "/")]),
        }]
    );
    let reply = hex("80030002000000140000000178f9e3c6a7c202a6230600000000ffff");
    assert_eq!(
        decode_all(&reply),
        vec![Frame::SynReply {
            stream_id: 1,
            fin: false,
            headers: Headers::new(),
        }]
    );
}

#[test]
fn header_blocks_share_one_zlib_stream_across_frames() {
    // kubectl port-forward's first two SYN_STREAMs, compressed by C zlib
    // in one stream: the second block refers back into the first.
    let bytes = hex(
        "800300010000003d0000000100000000000078f9e3c6a7c202253a703a2b294a4dcc8516\
         25aca9a0808614cb45e01c6061606100a4398b20d198094ade8c0600000000ffff\
         800300010000001800000003000000000000c2aa19540e2512d60b000000ffff",
    );
    let frames = decode_all(&bytes);
    let expect = |id, kind| Frame::SynStream {
        stream_id: id,
        associated_to: 0,
        priority: 0,
        fin: false,
        unidirectional: false,
        headers: headers(&[("streamtype", kind), ("port", "8080"), ("requestid", "0")]),
    };
    assert_eq!(frames, vec![expect(1, "error"), expect(3, "data")]);
}

#[test]
fn nul_separated_values_are_split_and_joined() {
    // A HEADERS frame with FLAG_FIN whose one name carries two values.
    let bytes = hex(
        "80030008010000400000000578f9e3c6a7c202a623462096acd02d2e294a4dccd50566b7\
         92fce4fc1c5d440a552e33d1039a032cf972f4b22d8af532f319ca8cd14400000000ffff",
    );
    let h = headers(&[
        ("x-stream-protocol-version", "v4.channel.k8s.io"),
        ("x-stream-protocol-version", "v3.channel.k8s.io"),
    ]);
    let frame = Frame::Headers {
        stream_id: 5,
        fin: true,
        headers: h.clone(),
    };
    assert_eq!(decode_all(&bytes), vec![frame.clone()]);
    // Re-encoding joins the values again; the block round-trips.
    assert_eq!(
        decode_all(&encode(std::slice::from_ref(&frame))),
        vec![frame]
    );
}

#[test]
fn header_blocks_for_another_dictionary_or_garbage_are_refused() {
    // A SYN_REPLY whose zlib header names dictionary 0x00000001.
    let other = hex("800300020000000e0000000178f9000000010000ffff");
    let mut buf = BytesMut::from(&other[..]);
    assert!(matches!(
        FrameDecoder::new().decode(&mut buf),
        Err(FrameError::Compression(_))
    ));
    let garbage = hex("80030002000000080000000112345678");
    let mut buf = BytesMut::from(&garbage[..]);
    assert!(FrameDecoder::new().decode(&mut buf).is_err());
}

#[test]
fn encoded_header_blocks_announce_the_spdy_dictionary() {
    let frame = Frame::SynReply {
        stream_id: 1,
        fin: false,
        headers: Headers::new(),
    };
    let bytes = encode(&[frame.clone(), frame.clone()]);
    // 0x78 0xf9: deflate, 32 KiB window, level 9, FDICT set; then DICTID,
    // the dictionary's Adler-32, which Go's zlib.NewReaderDict checks.
    assert_eq!(&bytes[12..18], &hex("78f9e3c6a7c2")[..]);
    // A sync flush ends each block: 00 00 ff ff.
    let first_len = 8 + usize::from(bytes[7]);
    assert_eq!(&bytes[first_len - 4..first_len], &[0, 0, 0xff, 0xff]);
    // The second block continues the stream: no second zlib header.
    assert_ne!(&bytes[first_len + 12..first_len + 14], &[0x78, 0xf9]);
    assert_eq!(decode_all(&bytes), vec![frame.clone(), frame]);
}

#[test]
fn header_names_go_out_lowercase_and_syn_stream_fields_round_trip() {
    let mut h = Headers::new();
    h.add("StreamType", "stdout");
    assert_eq!(h.iter().next(), Some(("streamtype", "stdout")));
    assert_eq!(h.get("STREAMTYPE"), Some("stdout"));
    let frame = Frame::SynStream {
        stream_id: 7,
        associated_to: 3,
        priority: 5,
        fin: true,
        unidirectional: true,
        headers: h,
    };
    let bytes = encode(std::slice::from_ref(&frame));
    // Flags FIN|UNIDIRECTIONAL; priority in the top 3 bits of byte 16.
    assert_eq!(bytes[4], 0x03);
    assert_eq!(bytes[16], 5 << 5);
    assert_eq!(decode_all(&bytes), vec![frame]);
}

#[test]
fn partial_frames_wait_for_more_bytes_and_bad_versions_fail() {
    let golden = hex("80030003000000080000000300000005");
    let mut decoder = FrameDecoder::new();
    let mut buf = BytesMut::from(&golden[..10]);
    assert!(decoder.decode(&mut buf).expect("partial").is_none());
    buf.extend_from_slice(&golden[10..]);
    assert!(decoder.decode(&mut buf).expect("whole").is_some());

    let mut buf = BytesMut::from(&hex("800200060000000400000001")[..]);
    assert!(matches!(
        FrameDecoder::new().decode(&mut buf),
        Err(FrameError::UnsupportedVersion(2))
    ));
    // Unknown control types (here NOOP, 5) are skipped, not fatal.
    assert_eq!(
        decode_all(&hex("8003000500000000")),
        vec![Frame::Unknown { frame_type: 5 }]
    );
}

#[tokio::test]
async fn sessions_open_reply_exchange_data_and_finish() {
    let (a, b) = duplex(1024);
    let client = SpdyConnection::start(a, BytesMut::new(), Role::Client, LONG).expect("client");
    let mut server = SpdyConnection::start(b, BytesMut::new(), Role::Server, LONG).expect("server");

    let serve = tokio::spawn(async move {
        let stream = server.accept().await.expect("stream");
        assert_eq!(stream.id, 1);
        assert_eq!(stream.headers.get("streamType"), Some("stdin"));
        stream.send.reply().await.expect("reply");
        let mut recv = stream.recv;
        let mut got = Vec::new();
        while let Some(chunk) = recv.recv().await {
            got.extend_from_slice(&chunk);
        }
        // Large writes arrive whole though split into 32 KiB frames.
        stream.send.write(Bytes::from(got)).await.expect("echo");
        stream.send.close().await.expect("fin");
        server
    });

    let mut h = Headers::new();
    h.add("streamType", "stdin");
    let stream = client.open(h, LONG).await.expect("open");
    let payload: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    stream
        .send
        .write(Bytes::from(payload.clone()))
        .await
        .expect("write");
    stream.send.close().await.expect("close");
    let mut recv = stream.recv;
    let mut echoed = Vec::new();
    while let Some(chunk) = recv.recv().await {
        echoed.extend_from_slice(&chunk);
    }
    assert_eq!(echoed, payload);
    let _server = serve.await.expect("server task");
}

#[tokio::test]
async fn a_reset_stream_fails_writes_and_ends_reads() {
    let (a, b) = duplex(1024);
    let client = SpdyConnection::start(a, BytesMut::new(), Role::Client, LONG).expect("client");
    let mut server = SpdyConnection::start(b, BytesMut::new(), Role::Server, LONG).expect("server");
    let serve = tokio::spawn(async move {
        let stream = server.accept().await.expect("stream");
        stream.send.reply().await.expect("reply");
        stream.send.reset(rst::CANCEL).await.expect("reset");
        server
    });
    let stream = client.open(Headers::new(), LONG).await.expect("open");
    let mut recv = stream.recv;
    assert!(recv.recv().await.is_none());
    assert!(stream.send.is_reset());
    assert!(stream.send.write(Bytes::from_static(b"x")).await.is_err());
    let _server = serve.await.expect("server task");
}

#[tokio::test]
async fn refused_streams_fail_open_and_pings_are_echoed() {
    let (a, b) = duplex(1024);
    let client = SpdyConnection::start(a, BytesMut::new(), Role::Client, LONG).expect("client");
    let server = SpdyConnection::start(b, BytesMut::new(), Role::Server, LONG).expect("server");
    // A server that stopped accepting refuses new streams.
    drop(server);
    let err = client
        .open(Headers::new(), LONG)
        .await
        .expect_err("refused");
    assert!(
        matches!(err, SpdyError::Reset(1) | SpdyError::Closed),
        "{err}"
    );
}

#[tokio::test]
async fn the_server_echoes_client_pings() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut raw, b) = duplex(1024);
    let _server = SpdyConnection::start(b, BytesMut::new(), Role::Server, LONG).expect("server");
    raw.write_all(&hex("800300060000000400000003"))
        .await
        .expect("ping");
    let mut echo = [0u8; 12];
    raw.read_exact(&mut echo).await.expect("pong");
    assert_eq!(echo.to_vec(), hex("800300060000000400000003"));
}

const LONG: std::time::Duration = std::time::Duration::from_secs(30);
