//! A layer's misuse panic names the line that called `forward` (`Module::forward` is
//! `#[track_caller]` in every implementation), also through a `Sequential` of boxed layers.
//! (One test in its own binary: it replaces the process-wide panic hook.)

use kiln_core::{DType, Tensor};
use kiln_nn::layers::{Conv2d, Linear, ReLU, Sequential};
use kiln_nn::Module;
use std::sync::{Arc, Mutex};

#[test]
fn layer_misuse_panics_name_the_callers_line() {
    let seen: Arc<Mutex<Vec<(String, u32)>>> = Arc::default();
    let sink = seen.clone();
    std::panic::set_hook(Box::new(move |info| {
        let loc = info.location().unwrap();
        eprintln!("{info}");
        sink.lock()
            .unwrap()
            .push((loc.file().to_string(), loc.line()));
    }));
    let fc = Linear::new(4, 3);
    let conv = Conv2d::new(3, 8, 3);
    let seq = Sequential::new()
        .append(Linear::new(4, 3))
        .append(ReLU::new());
    let x = Tensor::zeros([2, 5], DType::F32);
    let cases: Vec<(u32, Box<dyn Fn()>)> = vec![
        (line!(), Box::new(|| drop(fc.forward(&x)))),
        (line!(), Box::new(|| drop(conv.forward(&x)))),
        (line!(), Box::new(|| drop(seq.forward(&x)))),
    ];
    for (line, case) in &cases {
        seen.lock().unwrap().clear();
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(case));
        assert!(ran.is_err(), "line {line} must panic");
        let (file, at) = seen.lock().unwrap()[0].clone();
        assert!(
            file.ends_with("forward_location.rs") && *line == at,
            "the panic points at {file}:{at}, not at this test's line {line}"
        );
    }
    let _ = std::panic::take_hook();
}
