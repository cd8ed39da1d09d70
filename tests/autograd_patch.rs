//! candle's backward with the vendored patch (vendor/README.md): the first
//! gradient reaching a node is stored instead of added into zeros. These
//! cases pin the sums that the patch must leave unchanged — fan-in, the
//! rules that subtract, and first gradients that arrive as strided views —
//! against hand-computed values.

use candle_core::{Device, Result, Tensor, Var};

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// `x` used three times: its gradient is the sum of the three.
#[test]
fn fan_in_sums_every_consumer() -> Result<()> {
    let dev = Device::Cpu;
    let x = Var::new(&[1f32, 2., 3.], &dev)?;
    // y = x·x + 3x + x  →  dy/dx = 2x + 4
    let y = ((x.as_tensor() * x.as_tensor())? + (x.as_tensor() * 3.0)?)?;
    let y = (y + x.as_tensor())?.sum_all()?;
    let g = y.backward()?;
    assert_eq!(values(g.get(&x).unwrap()), vec![6.0, 8.0, 10.0]);
    Ok(())
}

/// The subtracting rules store a negated first gradient, and later
/// gradients still add to it.
#[test]
fn subtraction_negates_the_first_gradient() -> Result<()> {
    let dev = Device::Cpu;
    let a = Var::new(&[1f32, -2.], &dev)?;
    let b = Var::new(&[0.5f32, 4.], &dev)?;
    // y = Σ (a − b) − Σ b·b  →  dy/da = 1, dy/db = −1 − 2b
    let y = ((a.as_tensor() - b.as_tensor())?.sum_all()?
        - (b.as_tensor() * b.as_tensor())?.sum_all()?)?;
    let g = y.backward()?;
    assert_eq!(values(g.get(&a).unwrap()), vec![1.0, 1.0]);
    assert_eq!(values(g.get(&b).unwrap()), vec![-2.0, -9.0]);
    // neg, then only one consumer: the stored first gradient is −1
    let y = b.as_tensor().neg()?.sum_all()?;
    assert_eq!(values(y.backward()?.get(&b).unwrap()), vec![-1.0, -1.0]);
    Ok(())
}

/// A first gradient that arrives transposed or broadcast is stored
/// contiguous and with the right values.
#[test]
fn strided_first_gradients_are_stored_contiguous() -> Result<()> {
    let dev = Device::Cpu;
    let w = Var::new(&[[1f32, 2., 3.], [4., 5., 6.]], &dev)?;
    let r = Tensor::new(&[[1f32, 0.], [0., 2.], [3., 1.]], &dev)?;
    // y = Σ wᵀ ⊙ r  →  dy/dw = rᵀ
    let y = (w.as_tensor().t()? * &r)?.sum_all()?;
    let g = y.backward()?;
    let gw = g.get(&w).unwrap();
    assert!(gw.is_contiguous());
    assert_eq!(
        gw.to_vec2::<f32>()?,
        vec![vec![1., 0., 3.], vec![0., 2., 1.]]
    );
    // a bias broadcast over rows: its gradient sums them
    let b = Var::new(&[1f32, 1.], &dev)?;
    let y = (b.as_tensor().broadcast_as((3, 2))? * &r)?.sum_all()?;
    let gb = y.backward()?;
    assert_eq!(values(gb.get(&b).unwrap()), vec![4.0, 3.0]);
    Ok(())
}
