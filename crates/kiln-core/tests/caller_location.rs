//! Misuse panics point at the user's line, not at Kiln's source: the public tensor and
//! functional API is `#[track_caller]` down to the check that fails. (One test in its own
//! binary: it replaces the process-wide panic hook.)

use kiln_core::nn::functional as F;
use kiln_core::{DType, Tensor};
use std::sync::{Arc, Mutex};

#[test]
fn misuse_panics_name_the_callers_file_and_line() {
    let seen: Arc<Mutex<Vec<(String, u32, String)>>> = Arc::default();
    let sink = seen.clone();
    std::panic::set_hook(Box::new(move |info| {
        let loc = info.location().unwrap();
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        sink.lock()
            .unwrap()
            .push((loc.file().to_string(), loc.line(), msg));
    }));
    let a = Tensor::zeros([2, 3], DType::F32);
    let cases: Vec<(u32, Box<dyn Fn()>)> = vec![
        (
            line!(),
            Box::new(|| drop(a.matmul(&Tensor::zeros([4, 5], DType::F32)))),
        ),
        (
            line!(),
            Box::new(|| drop(a.matmul(&Tensor::zeros([3, 5], DType::F64)))),
        ),
        (
            line!(),
            Box::new(|| drop(&a + &Tensor::zeros([4], DType::F32))),
        ),
        (line!(), Box::new(|| drop(a.reshape([7])))),
        (line!(), Box::new(|| drop(a.sum([5], false)))),
        (
            line!(),
            Box::new(|| drop(Tensor::from_vec(vec![1.0f32; 5], [2, 3]))),
        ),
        (
            line!(),
            Box::new(|| drop(Tensor::zeros([1usize << 40, 1 << 40], DType::F32))),
        ),
        (line!(), Box::new(|| drop(F::softmax(&a, 4)))),
        (
            line!(),
            Box::new(|| {
                drop(F::mse_loss(
                    &Tensor::zeros([4, 1], DType::F32),
                    &Tensor::zeros([4], DType::F32),
                    F::Reduction::Mean,
                ))
            }),
        ),
        (
            line!(),
            Box::new(|| {
                drop(F::cross_entropy(
                    &Tensor::zeros([2, 3], DType::F32),
                    &Tensor::from_vec(vec![0i64, 3], [2]),
                ))
            }),
        ),
    ];
    for (line, case) in &cases {
        seen.lock().unwrap().clear();
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(case));
        assert!(ran.is_err(), "line {line} must panic");
        let got = seen.lock().unwrap().clone();
        let (file, at, msg) = &got[0];
        assert!(
            file.ends_with("caller_location.rs") && (*line..=line + 4).contains(at),
            "the panic {msg:?} points at {file}:{at}, not at this test's line {line}"
        );
    }
    let _ = std::panic::take_hook();
}
