//! Replays every input under `fuzz/regressions/` (crashes the fuzzer found,
//! plus seeds) through the fuzz target's checks.

#[test]
fn fuzz_regressions_do_not_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/regressions exists") {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("readable");
        anklume_compiler::fuzzing::check_source(&data);
        n += 1;
    }
    assert!(n > 0, "no regression inputs in {}", dir.display());
}

mod mutations {
    use proptest::prelude::*;

    fn corpus() -> Vec<Vec<u8>> {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../golden/corpus/v1-examples");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .expect("corpus")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| std::fs::read(p).expect("readable"))
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// Corpus files with random edits (bytes replaced, lines dropped or
        /// duplicated, text spliced in) never make the compiler panic.
        #[test]
        fn mutated_corpus_never_panics(
            which in 0usize..10,
            edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..4, prop::sample::select(vec![
                &b":"[..], b"- ", b"\n", b"  ", b"&a ", b"*a", b"{", b"]", b"'", b"\"", b"true", b"10.1", b"\xc3\xa9", b"<<: *a\n", b"---\n", b"~",
            ])), 1..6),
        ) {
            let files = corpus();
            let mut data = files[which % files.len()].clone();
            for (at, op, piece) in edits {
                if data.is_empty() {
                    data.extend_from_slice(piece);
                    continue;
                }
                let i = at.index(data.len());
                match op {
                    0 => data[i] = piece[0],
                    1 => data.splice(i..i, piece.iter().copied()).for_each(drop),
                    2 => {
                        let end = data[i..].iter().position(|b| *b == b'\n').map_or(data.len(), |p| i + p + 1);
                        data.drain(i..end);
                    }
                    _ => {
                        let start = data[..i].iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
                        let end = data[i..].iter().position(|b| *b == b'\n').map_or(data.len(), |p| i + p + 1);
                        let line = data[start..end].to_vec();
                        data.splice(start..start, line).for_each(drop);
                    }
                }
            }
            anklume_compiler::fuzzing::check_source(&data);
        }
    }
}
