//! The int8 product of dynamic quantization (quant.wgsl): one thread per
//! output element, four int8 products per `dot4I8Packed`.

use std::sync::Arc;

use lam_core::backend::View;
use lam_core::{DType, Error, Result, Storage};

use super::{grid_for, input, output};
use crate::context::Gpu;
use crate::kernels::{MATMUL_I8, MATMUL_I8_COLUMNS, MATMUL_I8_ROWS, ROW_SCALE_I8};
use crate::params::{to_u32, QuantParams};

const OP: &str = "matmul_i8";

/// See [`lam_core::Backend::matmul_i8`].
pub(crate) fn matmul_i8(
    gpu: &Arc<Gpu>,
    x: View,
    x_scale: Option<View>,
    weight: View,
    weight_scale: View,
    bias: Option<View>,
) -> Result<Storage> {
    let (xs, xl) = input(gpu, OP, x, Some(DType::F32))?;
    let (ws, wl) = input(gpu, OP, weight, Some(DType::I32))?;
    let (cs, cl) = input(gpu, OP, weight_scale, Some(DType::F32))?;
    xl.expect_rank(OP, "input [M, K]", 2)?;
    wl.expect_rank(OP, "weight [N, K/4]", 2)?;
    let (m, k) = (xl.shape[0], xl.shape[1]);
    let (n, words) = (wl.shape[0], wl.shape[1]);
    if words != k.div_ceil(4) || !wl.is_contiguous() || wl.offset != 0 {
        return Err(Error::shape(
            OP,
            format!(
                "a contiguous packed weight [N, {}] at offset 0",
                k.div_ceil(4)
            ),
            &wl.shape,
        ));
    }
    if cl.shape != [n] {
        return Err(Error::shape(
            OP,
            format!("weight scales of shape [{n}]"),
            &cl.shape,
        ));
    }
    let x_scale = match x_scale {
        Some(v) => {
            let (ss, sl) = input(gpu, OP, v, Some(DType::F32))?;
            if sl.shape != [m] {
                return Err(Error::shape(
                    OP,
                    format!("input scales of shape [{m}]"),
                    &sl.shape,
                ));
            }
            Scales::Given(ss, sl.offset, sl.strides[0])
        }
        None => Scales::Computed(row_scales(gpu, xs, xl)?),
    };
    let (ss, s_offset, s_stride) = match &x_scale {
        Scales::Given(s, offset, stride) => (s.buffer(), *offset, *stride),
        Scales::Computed(s) => (s.buffer(), 0, 1),
    };
    let bias = match bias {
        Some(b) => {
            let (bs, bl) = input(gpu, OP, b, Some(DType::F32))?;
            if bl.shape != [n] {
                return Err(Error::shape(
                    OP,
                    format!("a bias of shape [{n}]"),
                    &bl.shape,
                ));
            }
            Some((bs, bl))
        }
        None => None,
    };
    let out = output(gpu, OP, m * n, DType::F32)?;
    if m * n > 0 {
        let p = QuantParams {
            m: to_u32(OP, m)?,
            n: to_u32(OP, n)?,
            k: to_u32(OP, k)?,
            words: to_u32(OP, words)?,
            x_offset: to_u32(OP, xl.offset)?,
            x_row_stride: to_u32(OP, xl.strides[0])?,
            x_col_stride: to_u32(OP, xl.strides[1])?,
            s_offset: to_u32(OP, s_offset)?,
            s_stride: to_u32(OP, s_stride)?,
            ws_offset: to_u32(OP, cl.offset)?,
            ws_stride: to_u32(OP, cl.strides[0])?,
            b_offset: to_u32(OP, bias.map_or(0, |(_, l)| l.offset))?,
            b_stride: to_u32(OP, bias.map_or(0, |(_, l)| l.strides[0]))?,
            has_bias: u32::from(bias.is_some()),
            pad: [0; 2],
        };
        // Without a bias the scales stand in for it (never read).
        let b = bias.map_or(cs.buffer(), |(s, _)| s.buffer());
        let (params, grid) = (bytemuck::bytes_of(&p), grid_for(OP, m * n)?);
        if gpu.binds(&[MATMUL_I8]) {
            let buffers = [xs.buffer(), ss, ws.buffer(), cs.buffer(), b, out.buffer()];
            gpu.dispatch(MATMUL_I8, &[], params, &buffers, grid)?;
        } else {
            let rows = [xs.buffer(), ss, ws.buffer(), out.buffer()];
            gpu.dispatch(MATMUL_I8_ROWS, &[], params, &rows, grid)?;
            let columns = [cs.buffer(), b, out.buffer()];
            gpu.dispatch(MATMUL_I8_COLUMNS, &[], params, &columns, grid)?;
        }
    }
    Ok(out.into_storage())
}

/// The input scales: given (a buffer, the offset and stride of the view)
/// or computed for this call.
enum Scales<'a> {
    Given(&'a crate::storage::GpuStorage, usize, usize),
    Computed(crate::storage::GpuStorage),
}

/// `max |x| / 127` for each row of `x` (`[M, K]`, any strides), NaN for a
/// row holding one: a contiguous `[M]` buffer, one thread per row.
fn row_scales(
    gpu: &Arc<Gpu>,
    xs: &crate::storage::GpuStorage,
    xl: &lam_core::Layout,
) -> Result<crate::storage::GpuStorage> {
    let (m, k) = (xl.shape[0], xl.shape[1]);
    let scales = output(gpu, OP, m, DType::F32)?;
    if m > 0 {
        let p = QuantParams {
            m: to_u32(OP, m)?,
            k: to_u32(OP, k)?,
            x_offset: to_u32(OP, xl.offset)?,
            x_row_stride: to_u32(OP, xl.strides[0])?,
            x_col_stride: to_u32(OP, xl.strides[1])?,
            ..QuantParams::default()
        };
        gpu.dispatch(
            ROW_SCALE_I8,
            &[],
            bytemuck::bytes_of(&p),
            &[xs.buffer(), scales.buffer()],
            grid_for(OP, m)?,
        )?;
    }
    Ok(scales)
}
