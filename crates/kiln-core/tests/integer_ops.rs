//! Integer division, remainders and bit operations, against values worked by hand from C's
//! and Python's rules (the two remainder sign conventions), with broadcasting, wrapping at
//! the type's edges and the zero-divisor rule; misuse on floats names the op and dtypes.

use kiln_core::{DType, Tensor};

fn i32s(v: &[i32]) -> Tensor {
    Tensor::from_vec(v.to_vec(), [v.len()])
}

#[test]
fn division_truncates_and_remainders_follow_their_sign_rules() {
    let a = i32s(&[7, -7, 7, -7, 0, 5]);
    let b = i32s(&[2, 2, -2, -2, 3, 0]);
    assert_eq!(a.div_trunc(&b).to_vec::<i32>(), [3, -3, -3, 3, 0, 0]);
    // C's %: the dividend's sign.
    assert_eq!(a.fmod(&b).to_vec::<i32>(), [1, -1, 1, -1, 0, 0]);
    // Python's %: the divisor's sign.
    assert_eq!(a.remainder(&b).to_vec::<i32>(), [1, 1, -1, -1, 0, 0]);
    // i8::MIN / −1 wraps instead of trapping.
    let m = Tensor::from_vec(vec![i8::MIN], [1]);
    let n1 = Tensor::from_vec(vec![-1i8], [1]);
    assert_eq!(m.div_trunc(&n1).to_vec::<i8>(), [i8::MIN]);
}

#[test]
fn bit_operations_broadcast_and_shift_past_the_width_to_zero() {
    let x = Tensor::from_vec(vec![0b1100u8, 0b1010, 255], [3]);
    let m = Tensor::from_vec(vec![0b0110u8], [1]);
    assert_eq!(x.bitwise_and(&m).to_vec::<u8>(), [0b0100, 0b0010, 0b0110]);
    assert_eq!(x.bitwise_or(&m).to_vec::<u8>(), [0b1110, 0b1110, 255]);
    assert_eq!(
        x.bitwise_xor(&m).to_vec::<u8>(),
        [0b1010, 0b1100, 0b1111_1001]
    );
    let s = Tensor::from_vec(vec![1u8, 4, 8], [3]);
    assert_eq!(
        x.bitwise_left_shift(&s).to_vec::<u8>(),
        [0b1_1000, 0b1010_0000, 0]
    );
    assert_eq!(x.bitwise_right_shift(&s).to_vec::<u8>(), [0b110, 0, 0]);
    // Signed right shifts keep the sign.
    let n = Tensor::from_vec(vec![-16i64, -1, 16], [3]);
    let k = Tensor::from_vec(vec![2i64, 70, 2], [3]);
    assert_eq!(n.bitwise_right_shift(&k).to_vec::<i64>(), [-4, -1, 4]);
    let big = Tensor::from_vec(vec![u64::MAX], [1]);
    let one = Tensor::from_vec(vec![1u64], [1]);
    assert_eq!(
        big.bitwise_right_shift(&one).to_vec::<u64>(),
        [u64::MAX >> 1]
    );
}

#[test]
fn mixed_integer_types_promote_and_floats_are_refused() {
    let a = Tensor::from_vec(vec![300i16], [1]);
    let b = Tensor::from_vec(vec![7u8], [1]);
    let q = a.div_trunc(&b);
    assert_eq!(q.dtype(), DType::I16);
    assert_eq!(q.to_vec::<i16>(), [42]);
    let f = Tensor::from_vec(vec![1.5f32], [1]);
    let err =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f.bitwise_and(&f))).unwrap_err();
    let msg = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(msg.contains("bitwise_and") && msg.contains("f32"), "{msg}");
}
