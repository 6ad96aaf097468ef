use kiln_core::{DType, Tensor};
use kiln_data::transforms::{
    Compose, Normalize, RandomCrop, RandomHorizontalFlip, SampleRng, ToFloat, Transform,
};

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
}

#[test]
fn to_float_scales_u8_only() {
    let mut rng = SampleRng::new(0);
    let x = Tensor::from_vec(vec![0u8, 51, 255], [3]);
    let y = ToFloat::new().apply(&x, &mut rng);
    assert_eq!(y.dtype(), DType::F32);
    assert!(close(&y.to_vec::<f32>(), &[0.0, 0.2, 1.0]));
    let f = Tensor::from_vec(vec![2.0f64], [1]);
    assert_eq!(
        ToFloat::new().apply(&f, &mut rng).to_vec::<f32>(),
        vec![2.0]
    );
}

#[test]
fn normalize_is_per_channel() {
    let mut rng = SampleRng::new(0);
    // [2, 1, 2]: channel 0 = [1, 3], channel 1 = [10, 20]
    let x = Tensor::from_vec(vec![1.0f32, 3.0, 10.0, 20.0], [2, 1, 2]);
    let y = Normalize::new(vec![1.0, 10.0], vec![2.0, 5.0]).apply(&x, &mut rng);
    assert_eq!(y.shape(), &[2, 1, 2]);
    assert!(close(&y.to_vec::<f32>(), &[0.0, 1.0, 0.0, 2.0]));
    // One statistic for all channels.
    let y = Normalize::new(vec![1.0], vec![1.0]).apply(&x, &mut rng);
    assert!(close(&y.to_vec::<f32>(), &[0.0, 2.0, 9.0, 19.0]));
}

#[test]
#[should_panic(expected = "channel statistics")]
fn normalize_rejects_wrong_channel_count() {
    let x = Tensor::zeros([3, 2, 2], DType::F32);
    Normalize::new(vec![0.0, 0.0], vec![1.0, 1.0]).apply(&x, &mut SampleRng::new(0));
}

#[test]
fn flip_probability_is_respected() {
    let x = Tensor::from_vec(vec![1.0f32, 2.0], [1, 1, 2]);
    let flip = RandomHorizontalFlip::new(0.5);
    let flipped = (0..400)
        .filter(|&i| {
            flip.apply(&x, &mut SampleRng::for_sample(0, 0, i))
                .to_vec::<f32>()[0]
                == 2.0
        })
        .count();
    assert!((150..250).contains(&flipped), "{flipped} of 400 flipped");
}

#[test]
fn crop_without_padding_at_full_size_is_identity() {
    let x = Tensor::arange(0.0, 12.0, 1.0, DType::F32).reshape([1, 3, 4]);
    let y = RandomCrop::new(3, 4, 0).apply(&x, &mut SampleRng::new(3));
    assert_eq!(y.to_vec::<f32>(), x.to_vec::<f32>());
    let small = RandomCrop::new(2, 2, 0).apply(&x, &mut SampleRng::new(3));
    assert_eq!(small.shape(), &[1, 2, 2]);
}

#[test]
fn compose_chains_and_is_reproducible() {
    let pipeline = Compose::new()
        .then(ToFloat::new())
        .then(RandomCrop::new(4, 4, 2))
        .then(RandomHorizontalFlip::new(0.5))
        .then(Normalize::new(vec![0.5, 0.5, 0.5], vec![0.25, 0.25, 0.25]));
    assert_eq!(pipeline.len(), 4);
    let x = Tensor::from_vec((0..48u8).map(|v| v * 5).collect::<Vec<_>>(), [3, 4, 4]);
    let run = |i| {
        pipeline
            .apply(&x, &mut SampleRng::for_sample(1, 2, i))
            .to_vec::<f32>()
    };
    assert_eq!(run(0), run(0));
    let distinct: std::collections::BTreeSet<Vec<u32>> = (0..10)
        .map(|i| run(i).iter().map(|v| v.to_bits()).collect())
        .collect();
    assert!(
        distinct.len() > 1,
        "augmentations never varied across samples"
    );
    assert_eq!(
        pipeline.apply(&x, &mut SampleRng::new(0)).shape(),
        &[3, 4, 4]
    );
}
