//! A by-hand throughput measurement (timings never go in assertions):
//!
//! ```sh
//! cargo test --release -p skiff-images --lib unpack::throughput -- --ignored --nocapture
//! ```
#![allow(clippy::print_stderr)]

use std::fs;
use std::io::Write as _;
use std::time::{Duration, Instant};

use super::*;

/// A layer of about `total` bytes shaped like a distro image: many small
/// files, some medium, a few large; half text-like, half incompressible.
fn synthetic_layer(total: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let words = [
        "lib", "usr", "share", "config", "the", "data", "return", "0x00", "int", "\n",
    ];
    let mut tar = tar::Builder::new(Vec::new());
    let (mut written, mut i) = (0, 0);
    while written < total {
        if i % 40 == 0 {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            tar.append_data(&mut header, format!("usr/lib/pkg-{}", i / 40), &[][..])
                .unwrap();
        }
        let size = match next() % 100 {
            0..70 => 200 + next() as usize % 16_000,
            70..95 => 16_000 + next() as usize % 240_000,
            _ => 1_000_000 + next() as usize % 3_000_000,
        };
        let mut data = Vec::with_capacity(size + 8);
        if i % 2 == 0 {
            while data.len() < size {
                data.extend_from_slice(words[next() as usize % words.len()].as_bytes());
                data.push(b' ');
            }
        } else {
            while data.len() < size {
                data.extend_from_slice(&next().to_le_bytes());
            }
        }
        data.truncate(size);
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(size as u64);
        let path = format!("usr/lib/pkg-{}/file-{i}", i / 40);
        tar.append_data(&mut header, path, &data[..]).unwrap();
        written += size;
        i += 1;
    }
    tar.into_inner().unwrap()
}

fn mb_per_s(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64()
}

#[test]
#[ignore = "measures throughput; run by hand in release"]
fn throughput() {
    let tar = synthetic_layer(50_000_000);
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(&tar).unwrap();
    let gzip = gzip.finish().unwrap();
    let zstd = zstd::encode_all(&tar[..], 3).unwrap();
    eprintln!(
        "layer: {:.1} MB tar, {:.1} MB gzip, {:.1} MB zstd",
        tar.len() as f64 / 1e6,
        gzip.len() as f64 / 1e6,
        zstd.len() as f64 / 1e6
    );
    let scratch = tempfile::tempdir_in("/var/tmp").unwrap();
    for (name, compression, blob) in [
        ("none", Compression::None, &tar),
        ("gzip", Compression::Gzip, &gzip),
        ("zstd", Compression::Zstd, &zstd),
    ] {
        // CPU only: decompress, hash and walk the tar without writing.
        let started = Instant::now();
        let stream = HashingReader::new(compression.decoder(&blob[..]).unwrap());
        let mut archive = tar::Archive::new(BufReader::with_capacity(BUFFER_SIZE, stream));
        for entry in archive.entries().unwrap() {
            io::copy(&mut entry.unwrap(), &mut io::sink()).unwrap();
        }
        let cpu = started.elapsed();

        let dest = scratch.path().join(name);
        fs::create_dir(&dest).unwrap();
        nix::unistd::sync();
        let started = Instant::now();
        let stats = unpack_layer(&blob[..], compression, &dest, &UnpackOptions::default()).unwrap();
        let unpacked = started.elapsed();
        let root = File::open(&dest).unwrap();
        nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&root)).unwrap();
        let synced = started.elapsed();
        assert_eq!(stats.diff_id, Digest::sha256_of(&tar));
        eprintln!(
            "{name}: CPU only {:.0} MB/s; unpack {:.0} MB/s ({} ms); unpack+syncfs {:.0} MB/s ({} ms)",
            mb_per_s(tar.len(), cpu),
            mb_per_s(tar.len(), unpacked),
            unpacked.as_millis(),
            mb_per_s(tar.len(), synced),
            synced.as_millis(),
        );
    }
    // GNU tar on the same bytes, for comparison.
    let archive = scratch.path().join("layer.tar");
    fs::write(&archive, &tar).unwrap();
    let dest = scratch.path().join("gnu-tar");
    fs::create_dir(&dest).unwrap();
    nix::unistd::sync();
    let started = Instant::now();
    let status = std::process::Command::new("tar")
        .args([
            "-xpf",
            archive.to_str().unwrap(),
            "-C",
            dest.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let unpacked = started.elapsed();
    nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&File::open(&dest).unwrap())).unwrap();
    eprintln!(
        "GNU tar -x: {:.0} MB/s; with syncfs {:.0} MB/s",
        mb_per_s(tar.len(), unpacked),
        mb_per_s(tar.len(), started.elapsed())
    );
}
