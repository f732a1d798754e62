//! Signed webhooks prepared in advance, for the consumer-ingest stage of
//! `scripts/bench` (`scripts/bench-stages/ingest.sh`): wrk replays them, each once,
//! so the client does no signing or JSON while the consumer is measured.
//!
//! Writes `--count` webhooks, each a distinct task (one batch, ids `0..count`) with
//! its own `webhook-id`, signed now with `WEBHOOK_SECRET` exactly as the producer
//! signs (the shared crate's [`Secrets::headers`]), as the HTTP/1.1 requests wrk
//! sends, byte for byte, each followed by a NUL byte (which no request holds: the
//! headers are ASCII and the body is compact JSON). Request `i` goes to the file
//! `<out>.<i % parts>`, one per wrk thread, so no two threads send the same one.
//! Whole requests, so that before its run wrk only cuts its file at the NULs, and
//! builds nothing on a machine the stage shares with the consumer. The signatures
//! are good for the consumer's timestamp window (five minutes): replay them at once.
//!
//! `WEBHOOK_SECRET=whsec_... cargo run --release -p consumer --example presign -- \
//!     --count 20000 --parts 2 --out /tmp/requests --host 127.0.0.1:15101`

use anyhow::Context as _;
use clap::Parser as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use taskhooks_shared::signing::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, Secrets, unix_now};
use taskhooks_shared::{Priority, Task};

/// The example's flags.
#[derive(Debug, clap::Parser)]
struct Args {
    /// How many webhooks to write.
    #[arg(long)]
    count: u64,
    /// How many files to spread them over, round robin (one per wrk thread).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    parts: u64,
    /// The files' common prefix: `<out>.0`, `<out>.1`, …
    #[arg(long)]
    out: PathBuf,
    /// The consumer's address, for the `Host` header: `<ip or name>:<port>`.
    #[arg(long)]
    host: String,
    /// The webhook's path.
    #[arg(long, default_value = "/consumetasks")]
    path: String,
    /// The consumer's secret (several space-separated while rotating: each signs).
    #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true)]
    secret: Secrets,
}

/// Owners, used in turn: real-looking names of the producer's usual lengths, so a
/// body is the size of a real task's.
const OWNERS: [&str; 8] = [
    "Jane Doe",
    "Ahmed Rahimi",
    "Li Wei",
    "Maria Fernanda Oliveira",
    "Tom Baker",
    "Aiko Tanaka",
    "Olusegun Adeyemi",
    "Ann Lee",
];

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut files = (0..args.parts)
        .map(|part| open_part(&args.out, part))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let batchid = uuid::Uuid::new_v4().to_string();
    let timestamp = unix_now();
    for i in 0..args.count {
        // i % parts < parts <= 256: the cast cannot truncate.
        let part = (i % args.parts) as usize;
        write_webhook(&mut files[part], &args, &batchid, i, timestamp)
            .with_context(|| format!("cannot write {}", part_path(&args.out, part).display()))?;
    }
    for (part, file) in files.iter_mut().enumerate() {
        file.flush()
            .with_context(|| format!("cannot write {}", part_path(&args.out, part).display()))?;
    }
    eprintln!(
        "presign: {} signed webhooks in {} file(s) {}.*",
        args.count,
        args.parts,
        args.out.display()
    );
    Ok(())
}

/// Creates the file of part `part`.
fn open_part(out: &Path, part: u64) -> anyhow::Result<BufWriter<File>> {
    let path = part_path(out, part as usize);
    let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(BufWriter::new(file))
}

/// Writes task `id` of the batch as one POST, signed at `timestamp`, and a NUL.
fn write_webhook(
    file: &mut impl Write,
    args: &Args,
    batchid: &str,
    id: u64,
    timestamp: i64,
) -> anyhow::Result<()> {
    let turn = id as usize;
    let task = Task {
        batchid: batchid.to_owned(),
        id,
        owner: OWNERS[turn % OWNERS.len()].to_owned(),
        priority: Priority::ALL[turn % Priority::ALL.len()],
        created_at: Some(u64::try_from(timestamp)? * 1000),
    };
    let body = serde_json::to_vec(&task)?;
    let webhook_id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    let signed = args.secret.headers(&webhook_id, timestamp, &body);
    write!(
        file,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         {HEADER_ID}: {id}\r\n{HEADER_TIMESTAMP}: {timestamp}\r\n\
         {HEADER_SIGNATURE}: {signature}\r\nContent-Length: {length}\r\n\r\n",
        path = args.path,
        host = args.host,
        id = signed.id,
        timestamp = signed.timestamp,
        signature = signed.signature,
        length = body.len(),
    )?;
    file.write_all(&body)?;
    file.write_all(b"\0")?;
    Ok(())
}

/// The file of part `part`: `<out>.<part>`.
fn part_path(out: &Path, part: usize) -> PathBuf {
    let mut path = out.as_os_str().to_owned();
    path.push(format!(".{part}"));
    PathBuf::from(path)
}
