//! The int8 product of dynamic quantization (quant.wgsl): one thread per
//! output element, four int8 products per `dot4I8Packed`.

use std::sync::Arc;

use lam_core::backend::View;
use lam_core::{DType, Error, Result, Storage};

use super::{grid_for, input, output};
use crate::context::Gpu;
use crate::kernels::MATMUL_I8;
use crate::params::{to_u32, QuantParams};

const OP: &str = "matmul_i8";

/// See [`lam_core::Backend::matmul_i8`].
pub(crate) fn matmul_i8(
    gpu: &Arc<Gpu>,
    x: View,
    x_scale: View,
    weight: View,
    weight_scale: View,
    bias: Option<View>,
) -> Result<Storage> {
    let (xs, xl) = input(gpu, OP, x, Some(DType::F32))?;
    let (ss, sl) = input(gpu, OP, x_scale, Some(DType::F32))?;
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
    if cl.shape != [n] || sl.shape != [m] {
        return Err(Error::shape(
            OP,
            format!("scales of shape [{n}] and [{m}]"),
            &cl.shape,
        ));
    }
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
            s_offset: to_u32(OP, sl.offset)?,
            s_stride: to_u32(OP, sl.strides[0])?,
            ws_offset: to_u32(OP, cl.offset)?,
            ws_stride: to_u32(OP, cl.strides[0])?,
            b_offset: to_u32(OP, bias.map_or(0, |(_, l)| l.offset))?,
            b_stride: to_u32(OP, bias.map_or(0, |(_, l)| l.strides[0]))?,
            has_bias: u32::from(bias.is_some()),
            pad: [0; 2],
        };
        // Without a bias the scales stand in for it (never read).
        let b = bias.map_or(cs.buffer(), |(s, _)| s.buffer());
        gpu.dispatch(
            MATMUL_I8,
            &[],
            bytemuck::bytes_of(&p),
            &[
                xs.buffer(),
                ss.buffer(),
                ws.buffer(),
                cs.buffer(),
                b,
                out.buffer(),
            ],
            grid_for(OP, m * n)?,
        )?;
    }
    Ok(out.into_storage())
}
