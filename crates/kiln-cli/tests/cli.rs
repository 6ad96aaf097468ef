//! The `kiln` binary end to end: train on the bundled digits, then info, eval and predict on
//! the checkpoint it wrote, and clear errors for bad input.

use std::process::Command;

fn kiln(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env("CI", "1")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn train_info_eval_predict() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let (ok, text) = kiln(&[
        "train",
        "--model",
        "mlp",
        "--epochs",
        "3",
        "--out",
        out,
        "--name",
        "t",
        "--threads",
        "1",
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("epoch 3/3"), "{text}");
    let acc: f64 = text
        .split("test accuracy: ")
        .nth(1)
        .unwrap()
        .split('%')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(acc > 85.0, "{text}");
    let ckpt = dir.path().join("t/checkpoints/best");
    let ckpt = ckpt.to_str().unwrap();
    let tb = std::fs::read_dir(dir.path().join("t/tensorboard"))
        .unwrap()
        .count();
    assert_eq!(tb, 1, "one event file");

    let (ok, text) = kiln(&["info", ckpt]);
    assert!(ok, "{text}");
    assert!(
        text.contains("1.weight") && text.contains("[256, 64]") && text.contains("format: pt"),
        "{text}"
    );
    // A training checkpoint directory also shows the state `--resume` reads.
    assert!(
        text.contains("training state: ") && text.contains("epochs done"),
        "{text}"
    );

    let (ok, text) = kiln(&["eval", ckpt]);
    assert!(ok, "{text}");
    assert!(text.contains("359 test samples"), "{text}");

    // A "0" drawn as an 8x8 digit (raw 0..16 values).
    let zero = "0,0,5,13,9,1,0,0,0,0,13,15,10,15,5,0,0,3,15,2,0,11,8,0,0,4,12,0,0,8,8,0,0,5,8,0,0,9,8,0,0,4,11,0,1,12,7,0,0,2,14,5,10,12,0,0,0,0,6,13,10,0,0,0";
    let (ok, text) = kiln(&["predict", ckpt, zero]);
    assert!(ok, "{text}");
    assert!(text.contains("class 0"), "{text}");

    let (ok, text) = kiln(&["predict", ckpt, "1,2,3"]);
    assert!(!ok && text.contains("takes 64 values"), "{text}");
}

#[test]
fn bad_inputs_are_errors_not_crashes() {
    let (ok, text) = kiln(&["info", "/nonexistent/model.safetensors"]);
    assert!(!ok && text.contains("error:"), "{text}");
    let (ok, text) = kiln(&["train", "--data", "mnist:/nonexistent"]);
    assert!(!ok && text.contains("error:"), "{text}");
    let (ok, text) = kiln(&["train", "--data", "imagenet"]);
    assert!(!ok && text.contains("unknown data source"), "{text}");
}
