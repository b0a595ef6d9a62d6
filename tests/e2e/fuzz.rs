//! The corpus of interesting frames (bench/corpus/frames/{code}/*), replayed over a real
//! WebSocket through the gateway: each gets exactly one answer, an error frame with that
//! code, and nothing is stored. (The property tests over the same code paths, without
//! I/O, are in bench/tests/fuzz.rs.)

use std::time::Duration;

use e2e::Stack;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_frames_are_refused_with_their_codes_over_a_real_socket() {
    let stack = Stack::start().await;
    stack.create_channel("dm-kept", &["alice", "bob"]).await;
    let mut mallory = stack.connect("mallory").await;
    let root = e2e::repo_root().join("bench/corpus/frames");
    let mut replayed = 0;
    for code in std::fs::read_dir(&root).expect("bench/corpus/frames") {
        let code = code.unwrap().path();
        let expected = code.file_name().unwrap().to_string_lossy().into_owned();
        let mut files: Vec<_> = std::fs::read_dir(&code).unwrap().map(|f| f.unwrap().path()).collect();
        files.sort();
        for file in files {
            let frame = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
            mallory.send_text(&frame).await;
            let answer = mallory.recv().await;
            assert_eq!(answer["type"], "error", "{}: {answer}", file.display());
            assert_eq!(answer["code"], expected.as_str(), "{}: {answer}", file.display());
            replayed += 1;
        }
    }
    assert!(replayed > 30, "the corpus is there");
    mallory.expect_silence(Duration::from_millis(200)).await;
    assert!(stack.full_history("alice", "dm-kept").await.is_empty());
}
