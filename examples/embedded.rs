//! raftkv embedded: a durable KV store in a directory, with versioned writes.
//!
//!     cargo run --example embedded -- [DIR] [--replicas N]
//!
//! Run it twice on the same directory: the counter keeps counting across restarts.

use raftkv::storage::Backend;
use raftkv::{Db, DbConfig, DbError};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut dir = None;
    let mut replicas = 1;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--replicas" => replicas = args.next().ok_or("--replicas needs a number")?.parse()?,
            other => dir = Some(other.to_string()),
        }
    }
    let tmp = tempfile::tempdir()?;
    let dir = dir.map_or_else(|| tmp.path().to_path_buf(), Into::into);
    let mut config = DbConfig::new(Backend::File, &dir);
    config.replicas = replicas;
    let db = Db::open(config)?;

    // Increment a counter with compare-and-set, retrying on a version conflict.
    let (count, version) = match db.get(b"runs")? {
        Some((v, version)) => (String::from_utf8_lossy(&v).parse::<u64>()?, version),
        None => (0, 0),
    };
    match db.put_if(b"runs", (count + 1).to_string().as_bytes(), version) {
        Ok(v) => println!("{}: run {} (key version {v})", dir.display(), count + 1),
        Err(DbError::VersionMismatch { current }) => println!("raced: now at {current}"),
        Err(e) => return Err(e.into()),
    }
    db.close();
    Ok(())
}
