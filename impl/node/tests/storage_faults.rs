//! Storage faults: what a crash or a damaged disk leaves behind, and what `Storage::open`
//! must do with it (docs/protocol.md §2, §8): keep everything acknowledged, cut a torn tail,
//! refuse a corrupt middle with the file and offset.

use std::fs::{self, OpenOptions};
use std::io::Write;

use serde::{Deserialize, Serialize};
use vigil::storage::{Storage, StorageError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    slot: u64,
    payload: Vec<u8>,
}

type TestStorage = Storage<u64, Vec<u8>, Entry>;

fn entry(slot: u64) -> Entry {
    Entry {
        slot,
        payload: vec![slot as u8; (slot % 7) as usize + 1],
    }
}

fn log_path(directory: &std::path::Path) -> std::path::PathBuf {
    directory.join("log")
}

#[test]
fn reopen_keeps_everything() {
    let directory = tempfile::tempdir().unwrap();
    {
        let (mut storage, recovered) = TestStorage::open(directory.path()).unwrap();
        assert!(recovered.records.is_empty());
        assert!(recovered.metadata.is_none());
        assert!(recovered.snapshot.is_none());
        storage.append(&[entry(1), entry(2)]).unwrap();
        storage.write_metadata(&7).unwrap();
        storage.append(&[entry(3)]).unwrap();
        storage.write_metadata(&9).unwrap();
    }
    let (storage, recovered) = TestStorage::open(directory.path()).unwrap();
    assert_eq!(recovered.records, vec![entry(1), entry(2), entry(3)]);
    assert_eq!(recovered.metadata, Some(9));
    assert_eq!(recovered.torn_tail_bytes, 0);
    assert_eq!(storage.log_records(), 3);
}

#[test]
fn torn_tail_is_truncated_at_every_cut_point() {
    let directory = tempfile::tempdir().unwrap();
    {
        let (mut storage, _) = TestStorage::open(directory.path()).unwrap();
        storage.append(&[entry(1), entry(2)]).unwrap();
    }
    let intact = fs::read(log_path(directory.path())).unwrap();
    {
        let (mut storage, _) = TestStorage::open(directory.path()).unwrap();
        storage.append(&[entry(3)]).unwrap();
    }
    let full = fs::read(log_path(directory.path())).unwrap();
    // Every proper prefix of the third record is a crash during its append.
    for cut in intact.len()..full.len() {
        fs::write(log_path(directory.path()), &full[..cut]).unwrap();
        let (mut storage, recovered) = TestStorage::open(directory.path()).unwrap();
        assert_eq!(recovered.records, vec![entry(1), entry(2)], "cut at {cut}");
        assert_eq!(recovered.torn_tail_bytes, (cut - intact.len()) as u64);
        assert_eq!(
            fs::read(log_path(directory.path())).unwrap(),
            intact,
            "truncated back to the intact prefix"
        );
        // Appending after a truncated tail continues cleanly.
        storage.append(&[entry(4)]).unwrap();
        drop(storage);
        let (_, recovered) = TestStorage::open(directory.path()).unwrap();
        assert_eq!(recovered.records, vec![entry(1), entry(2), entry(4)]);
    }
}

#[test]
fn garbage_last_record_is_a_torn_tail() {
    let directory = tempfile::tempdir().unwrap();
    {
        let (mut storage, _) = TestStorage::open(directory.path()).unwrap();
        storage.append(&[entry(1), entry(2)]).unwrap();
    }
    let mut contents = fs::read(log_path(directory.path())).unwrap();
    let last = contents.len() - 1;
    contents[last] ^= 0xff; // the last record's payload was not fully written
    fs::write(log_path(directory.path()), &contents).unwrap();
    let (_, recovered) = TestStorage::open(directory.path()).unwrap();
    assert_eq!(recovered.records, vec![entry(1)]);
    assert!(recovered.torn_tail_bytes > 0);
}

#[test]
fn corrupt_middle_refuses_to_open_naming_file_and_offset() {
    let directory = tempfile::tempdir().unwrap();
    {
        let (mut storage, _) = TestStorage::open(directory.path()).unwrap();
        storage.append(&[entry(1)]).unwrap();
    }
    let first_record_bytes = fs::metadata(log_path(directory.path())).unwrap().len();
    {
        let (mut storage, _) = TestStorage::open(directory.path()).unwrap();
        storage.append(&[entry(2), entry(3)]).unwrap();
    }
    let mut contents = fs::read(log_path(directory.path())).unwrap();
    // Flip a payload byte of the second record: two records' worth of acknowledged data follow.
    contents[first_record_bytes as usize + 8] ^= 0x55;
    fs::write(log_path(directory.path()), &contents).unwrap();
    let error = TestStorage::open(directory.path()).unwrap_err();
    match &error {
        StorageError::CorruptRecord { path, offset, .. } => {
            assert_eq!(path, &log_path(directory.path()));
            assert_eq!(*offset, first_record_bytes);
        }
        other => panic!("expected CorruptRecord, got {other:?}"),
    }
    let message = error.to_string();
    assert!(message.contains("log"), "{message}");
    assert!(
        message.contains(&format!("offset {first_record_bytes}")),
        "{message}"
    );
    // The file is left untouched for the operator to inspect.
    assert_eq!(fs::read(log_path(directory.path())).unwrap(), contents);
}

#[test]
fn damaged_metadata_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    {
        let (mut storage, _) = TestStorage::open(directory.path()).unwrap();
        storage.write_metadata(&5).unwrap();
    }
    let path = directory.path().join("metadata");
    let mut contents = fs::read(&path).unwrap();
    let last = contents.len() - 1;
    contents[last] ^= 1;
    fs::write(&path, &contents).unwrap();
    let error = TestStorage::open(directory.path()).unwrap_err();
    assert!(
        matches!(error, StorageError::CorruptFile { ref path, .. } if path.ends_with("metadata")),
        "{error}"
    );
}

#[test]
fn unfinished_temporary_files_are_ignored() {
    let directory = tempfile::tempdir().unwrap();
    {
        let (mut storage, _) = TestStorage::open(directory.path()).unwrap();
        storage.write_metadata(&3).unwrap();
    }
    // A crash after writing metadata.tmp and before the rename.
    fs::write(directory.path().join("metadata.tmp"), b"half").unwrap();
    let (_, recovered) = TestStorage::open(directory.path()).unwrap();
    assert_eq!(recovered.metadata, Some(3));
    assert!(!directory.path().join("metadata.tmp").exists());
}

#[test]
fn compaction_replaces_prefix_with_snapshot() {
    let directory = tempfile::tempdir().unwrap();
    {
        let (mut storage, _) = TestStorage::open(directory.path()).unwrap();
        storage
            .append(&(1..=10).map(entry).collect::<Vec<_>>())
            .unwrap();
        let bytes_before = storage.log_bytes();
        storage
            .compact(&b"state up to 8".to_vec(), &[entry(9), entry(10)])
            .unwrap();
        assert!(storage.log_bytes() < bytes_before);
        storage.append(&[entry(11)]).unwrap();
    }
    let (storage, recovered) = TestStorage::open(directory.path()).unwrap();
    assert_eq!(recovered.snapshot, Some(b"state up to 8".to_vec()));
    assert_eq!(recovered.records, vec![entry(9), entry(10), entry(11)]);
    assert_eq!(storage.log_records(), 3);
}

#[test]
fn a_snapshot_larger_than_a_request_frame_is_kept() {
    // 80 MiB: above the 16 MiB request frame, and above a small record limit.
    let snapshot = vec![b's'; 80 * 1024 * 1024];
    let directory = tempfile::tempdir().unwrap();
    {
        let (mut storage, _) = TestStorage::open(directory.path()).unwrap();
        storage.append(&[entry(1), entry(2)]).unwrap();
        storage.compact(&snapshot, &[entry(2)]).unwrap();
    }
    let (_, recovered) = TestStorage::open(directory.path()).unwrap();
    assert_eq!(recovered.snapshot.as_ref(), Some(&snapshot));
    assert_eq!(recovered.records, vec![entry(2)]);
}

#[test]
fn appends_are_on_disk_when_append_returns() {
    // No close, no drop: what `append` acknowledged is visible to a fresh open at once.
    let directory = tempfile::tempdir().unwrap();
    let (mut storage, _) = TestStorage::open(directory.path()).unwrap();
    storage.append(&[entry(1)]).unwrap();
    let (_, recovered) = TestStorage::open(directory.path()).unwrap();
    assert_eq!(recovered.records, vec![entry(1)]);
    // A header claiming an absurd length, followed by non-zero bytes, is damage, not a torn tail.
    let mut file = OpenOptions::new()
        .append(true)
        .open(log_path(directory.path()))
        .unwrap();
    file.write_all(&u32::MAX.to_le_bytes()).unwrap();
    file.write_all(&[7u8; 12]).unwrap();
    drop(file);
    let error = TestStorage::open(directory.path()).unwrap_err();
    assert!(
        matches!(error, StorageError::CorruptRecord { .. }),
        "{error}"
    );
    drop(storage);
}

#[test]
fn zeroed_tail_is_a_torn_tail() {
    // Some file systems extend the file before the data lands: a crash leaves zeros.
    let directory = tempfile::tempdir().unwrap();
    {
        let (mut storage, _) = TestStorage::open(directory.path()).unwrap();
        storage.append(&[entry(1)]).unwrap();
    }
    let intact = fs::read(log_path(directory.path())).unwrap();
    let mut contents = intact.clone();
    contents.extend_from_slice(&[0u8; 4096]);
    fs::write(log_path(directory.path()), &contents).unwrap();
    let (_, recovered) = TestStorage::open(directory.path()).unwrap();
    assert_eq!(recovered.records, vec![entry(1)]);
    assert_eq!(recovered.torn_tail_bytes, 4096);
    assert_eq!(fs::read(log_path(directory.path())).unwrap(), intact);
}
