//! Recognising an archive's compression by its magic bytes and decompressing it on a second core.
//!
//! GNU tar hands decompression to a separate gzip process, so unpacking uses two cores. vr does
//! the same with a thread: it decompresses into 1 MiB chunks that travel through a bounded channel
//! (and come back for reuse), while the caller's thread writes files. Extensions are not trusted:
//! Velociraptor served `.tar.gz` names holding bzip2 data, and a compressed stream named `.tar`
//! would otherwise be unpacked as garbage.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::thread::{self, JoinHandle};

use super::ImageError;

/// Size of one decompressed chunk handed between the threads.
const CHUNK: usize = 1 << 20;
/// Chunks in flight between the decompressor and the writer.
const DEPTH: usize = 4;
/// Read buffer for the compressed input.
const INPUT_BUFFER: usize = 1 << 20;

/// The compression formats vr reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    /// A plain tar stream (or something unrecognised, which the tar parser will reject).
    None,
    /// gzip, possibly several concatenated members (pigz, `cat a.gz b.gz`).
    Gzip,
    /// bzip2, possibly several concatenated streams (pbzip2).
    Bzip2,
    /// xz, possibly several concatenated streams.
    Xz,
}

/// Recognises the compression from the first bytes of a file.
///
/// Returns the name of a recognised but unsupported format as the error.
pub(crate) fn detect(magic: &[u8]) -> Result<Compression, &'static str> {
    const KNOWN: &[(&[u8], Result<Compression, &str>)] = &[
        (&[0x1f, 0x8b], Ok(Compression::Gzip)),
        (b"BZh", Ok(Compression::Bzip2)),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0x00], Ok(Compression::Xz)),
        (&[0x28, 0xb5, 0x2f, 0xfd], Err("zstd")),
        (&[0x04, 0x22, 0x4d, 0x18], Err("lz4")),
        (&[0x1f, 0x9d], Err("compress (.Z)")),
        (b"7z\xbc\xaf\x27\x1c", Err("7-zip")),
        (b"PK\x03\x04", Err("zip")),
    ];
    KNOWN
        .iter()
        .find(|(prefix, _)| magic.starts_with(prefix))
        .map_or(Ok(Compression::None), |(_, result)| *result)
}

/// A tar stream opened for reading, with its decompressor (if any) on its own thread.
///
/// Dropping it stops and joins the thread: fields drop in order, so the reader goes first,
/// which closes the channel and makes a blocked `send` fail.
pub(crate) struct Stream {
    /// Where the tar bytes come from.
    reader: Box<dyn Read>,
    /// The decompressor thread.
    _thread: Joiner,
}

/// Joins a thread when dropped.
struct Joiner(Option<JoinHandle<()>>);

impl Drop for Joiner {
    fn drop(&mut self) {
        if let Some(thread) = self.0.take() {
            if thread.join().is_err() {
                tracing::error!("the decompressor thread panicked");
            }
        }
    }
}

impl Stream {
    /// Opens `archive`, recognises its compression and starts decompressing it.
    pub(crate) fn open(archive: &Path) -> Result<Stream, ImageError> {
        let file = File::open(archive).map_err(|e| ImageError::io("open", archive, e))?;
        Stream::start(file, archive)
    }

    /// Starts decompressing an already opened archive file (opened before a chroot).
    pub(crate) fn start(mut file: File, archive: &Path) -> Result<Stream, ImageError> {
        let compression = sniff(&mut file, archive)?;
        let input = BufReader::with_capacity(INPUT_BUFFER, file);
        let decoder: Box<dyn Read + Send> = match compression {
            Compression::None => return Ok(Stream { reader: Box::new(input), _thread: Joiner(None) }),
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
            Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(input)),
            Compression::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(input)),
        };
        let (full_tx, full_rx) = mpsc::sync_channel(DEPTH);
        let (free_tx, free_rx) = mpsc::sync_channel(DEPTH + 2);
        let thread = thread::Builder::new()
            .name("vr-decompress".into())
            .spawn(move || pump(decoder, &full_tx, &free_rx))
            .map_err(|e| ImageError::io("start a decompressor thread for", archive, e))?;
        let reader =
            ChunkReader { full: full_rx, free: free_tx, current: Vec::new(), len: 0, pos: 0, done: false };
        Ok(Stream { reader: Box::new(reader), _thread: Joiner(Some(thread)) })
    }

    /// The decompressed tar bytes.
    pub(crate) fn reader(&mut self) -> &mut dyn Read {
        &mut self.reader
    }
}

/// Reads the magic bytes, returns the file to its start and recognises the compression.
fn sniff(file: &mut File, archive: &Path) -> Result<Compression, ImageError> {
    use std::io::{Seek, SeekFrom};
    let mut magic = [0u8; 8];
    let mut got = 0;
    while got < magic.len() {
        match file.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ImageError::io("read", archive, e)),
        }
    }
    file.seek(SeekFrom::Start(0)).map_err(|e| ImageError::io("seek in", archive, e))?;
    detect(&magic[..got]).map_err(|compression| ImageError::UnsupportedCompression {
        archive: archive.to_path_buf(),
        compression,
    })
}

/// One message from the decompressor thread.
enum Chunk {
    /// A buffer of `CHUNK` bytes of which the first `.1` are data.
    Data(Vec<u8>, usize),
    /// The compressed stream ended cleanly.
    End,
    /// Decompression failed.
    Failed(io::Error),
}

/// The decompressor thread: fills chunks until the stream ends or the reader goes away.
fn pump(mut decoder: Box<dyn Read + Send>, full: &SyncSender<Chunk>, free: &Receiver<Vec<u8>>) {
    loop {
        let mut buf = match free.try_recv() {
            Ok(buf) => buf,
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => vec![0; CHUNK],
        };
        let mut filled = 0;
        while filled < buf.len() {
            match decoder.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = full.send(Chunk::Failed(e));
                    return;
                }
            }
        }
        let end = filled < buf.len();
        if filled > 0 && full.send(Chunk::Data(buf, filled)).is_err() {
            return;
        }
        if end {
            let _ = full.send(Chunk::End);
            return;
        }
    }
}

/// The writer's side of the channel: a `Read` over the decompressed chunks.
struct ChunkReader {
    full: Receiver<Chunk>,
    free: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    len: usize,
    pos: usize,
    done: bool,
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.len {
            if self.done || out.is_empty() {
                return Ok(0);
            }
            match self.full.recv() {
                Ok(Chunk::Data(buf, len)) => {
                    let old = std::mem::replace(&mut self.current, buf);
                    if !old.is_empty() {
                        // Recycling is an optimisation: if the pool is full, drop the buffer.
                        let _ = self.free.try_send(old);
                    }
                    self.len = len;
                    self.pos = 0;
                }
                Ok(Chunk::End) => self.done = true,
                Ok(Chunk::Failed(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Err(io::Error::other("the decompressor thread stopped early"));
                }
            }
        }
        let n = out.len().min(self.len - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats_by_magic() {
        assert_eq!(detect(&[0x1f, 0x8b, 8, 0]), Ok(Compression::Gzip));
        assert_eq!(detect(b"BZh91AY&SY"), Ok(Compression::Bzip2));
        assert_eq!(detect(&[0xfd, b'7', b'z', b'X', b'Z', 0, 0, 4]), Ok(Compression::Xz));
        assert_eq!(detect(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Err("zstd"));
        assert_eq!(detect(b"etc/passwd\0\0"), Ok(Compression::None));
        assert_eq!(detect(b""), Ok(Compression::None));
    }
}
