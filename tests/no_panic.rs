//! Forced internal failures (`SNAKEID_FAILPOINTS`, feature `failpoints`): a panic in loading, identifying, tract's
//! inference or the GPU readback reaches the caller as `Error::Internal`, and the same classifier answers correctly
//! on the next call. One test function, because the failpoints are process-wide.

use snakeid::{Backend, Classifier, Error};
use snakeid_tests::*;
use std::sync::Arc;

fn arm(spec: &str) {
    // Safe here: this test binary has one test, and no other thread reads the environment meanwhile.
    std::env::set_var("SNAKEID_FAILPOINTS", spec);
}

fn expect_internal<T: std::fmt::Debug>(r: snakeid::Result<T>, step: &str) {
    match r {
        Err(Error::Internal(m)) => assert!(m.contains(&format!("failpoint {step}")) && !m.contains('\n'), "{m}"),
        other => panic!("expected Internal from failpoint {step}, got {other:?}"),
    }
}

fn top(c: &Classifier, photo: &[u8]) -> Vec<(usize, f32)> {
    ranking(&c.identify(photo, Some("IN"), 5).expect("answers"))
}

#[test]
fn forced_panics_become_internal_errors_and_the_classifier_keeps_working() {
    let photo = photo("rocket.jpg");
    arm("");

    // Loading.
    arm("load=1");
    expect_internal(Classifier::embedded_default(), "load");
    let c = Arc::new(Classifier::embedded_default().expect("loads after the forced failure"));
    let want = top(&c, &photo);

    // Identifying, and inside tract's run.
    for step in ["identify", "inference"] {
        arm(&format!("{step}=2"));
        expect_internal(c.identify(&photo, Some("IN"), 5), step);
        expect_internal(c.identify(&photo, Some("IN"), 5), step);
        assert_eq!(top(&c, &photo), want, "after {step} failed twice");
    }

    // Threads sharing the classifier: exactly the armed number of calls fail, every other call answers as before.
    arm("inference=3");
    let results: Vec<_> = (0..4)
        .map(|_| {
            let (c, photo) = (c.clone(), photo.clone());
            std::thread::spawn(move || (0..3).map(|_| c.identify(&photo, Some("IN"), 5)).collect::<Vec<_>>())
        })
        .flat_map(|t| t.join().expect("no panic escapes"))
        .collect();
    let failed = results.iter().filter(|r| matches!(r, Err(Error::Internal(_)))).count();
    assert_eq!(failed, 3);
    for r in results.iter().filter_map(|r| r.as_ref().ok()) {
        assert_eq!(ranking(r), want);
    }

    // The GPU: a panic while the output buffer is mapped must leave it unmapped, or every later call would fail.
    arm("");
    if gpu_available() {
        let g = Classifier::embedded_default().unwrap().with_backend(Backend::Gpu, None).expect("GPU backend");
        let want = top(&g, &photo);
        arm("gpu.readback=1");
        expect_internal(g.identify(&photo, Some("IN"), 5), "gpu.readback");
        assert_eq!(top(&g, &photo), want, "the GPU classifier answers after a panic during readback");
        assert_eq!(top(&g, &photo), want);
    }
    arm("");
}
