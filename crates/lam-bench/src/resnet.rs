//! Training throughput of a small ResNet on `[batch, 3, 32, 32]`, the
//! `resnet` of `bench/torch_bench.py`: a stem (conv 3×3 → 16, BatchNorm,
//! ReLU), three stages of two basic blocks of 16, 32 and 64 channels (conv
//! 3×3, BatchNorm, ReLU, conv 3×3, BatchNorm, plus the block's input, ReLU;
//! the first block of stages 2 and 3 halves the resolution with stride 2
//! and its shortcut is a 1×1 stride-2 conv and BatchNorm), global average
//! pooling and a linear head `64 → 10`; convolutions without bias.
//! Cross-entropy, SGD (lr 0.1, momentum 0.9, weight decay 5e-4). One fixed
//! batch of standard-normal images and random labels in `0..10`.

use lam_core::nn::{
    AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Conv2dConfig, Flatten, Linear, Module, ReLU, Sequential,
};
use lam_core::optim::Sgd;
use lam_core::{manual_seed, Device, Result, Tensor};

use crate::training::{self, Workload};
use crate::{arg, Outcome};

/// Channels of the stem and of each stage.
const WIDTHS: [usize; 3] = [16, 32, 64];
/// Basic blocks per stage.
const BLOCKS: usize = 2;
/// Classes of the head.
const CLASSES: usize = 10;

/// `resnet BATCH STEPS`
pub fn run(args: &[String], device: &Device) -> Outcome {
    let batch: usize = arg(args, 0, "BATCH")?;
    let steps: usize = arg(args, 1, "STEPS")?;
    manual_seed(0);
    let model = model(device)?;
    let x = Tensor::randn(&[batch, 3, 32, 32], device)?;
    let y = Tensor::randint(0, CLASSES as i32, &[batch], device)?;
    let mut opt = Sgd::new(model.parameters(), 0.1)?
        .momentum(0.9)
        .weight_decay(5e-4);
    let workload = Workload {
        name: "resnet",
        batch,
        items_per_step: batch,
        unit: "samples",
        model: &model,
    };
    training::bench_with(&workload, &mut opt, steps, device, || {
        model.forward(&x)?.cross_entropy(&y)
    })
}

/// The network: stem, stages, pooling, head.
fn model(device: &Device) -> Result<Sequential> {
    let mut net = Sequential::new()
        .add(conv(3, WIDTHS[0], 3, 1, device)?)
        .add(BatchNorm2d::new(WIDTHS[0], device)?)
        .add(ReLU);
    let mut channels = WIDTHS[0];
    for (stage, &width) in WIDTHS.iter().enumerate() {
        for block in 0..BLOCKS {
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            net = net.add(BasicBlock::new(channels, width, stride, device)?);
            channels = width;
        }
    }
    Ok(net
        .add(AdaptiveAvgPool2d::new(1)?)
        .add(Flatten::new())
        .add(Linear::new(channels, CLASSES, device)?))
}

/// A `kernel`×`kernel` convolution without bias, padded to keep the size
/// (before the stride).
fn conv(
    input: usize,
    output: usize,
    kernel: usize,
    stride: usize,
    device: &Device,
) -> Result<Conv2d> {
    let config = Conv2dConfig::default()
        .stride(stride)
        .padding(kernel / 2)
        .bias(false);
    Conv2d::with_config(input, output, kernel, config, device)
}

/// conv-bn-relu-conv-bn plus the shortcut, then ReLU (torchvision's
/// `BasicBlock`, with its field names).
#[derive(lam_core::nn::Module)]
#[module(crate = "lam_core")]
struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    /// 1×1 conv and BatchNorm where the block changes size or channels.
    downsample: Option<Sequential>,
}

impl BasicBlock {
    fn new(input: usize, output: usize, stride: usize, device: &Device) -> Result<BasicBlock> {
        let downsample = if stride != 1 || input != output {
            Some(
                Sequential::new()
                    .add(conv(input, output, 1, stride, device)?)
                    .add(BatchNorm2d::new(output, device)?),
            )
        } else {
            None
        };
        Ok(BasicBlock {
            conv1: conv(input, output, 3, stride, device)?,
            bn1: BatchNorm2d::new(output, device)?,
            conv2: conv(output, output, 3, 1, device)?,
            bn2: BatchNorm2d::new(output, device)?,
            downsample,
        })
    }
}

impl Module for BasicBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.bn1.forward(&self.conv1.forward(x)?)?.relu()?;
        let y = self.bn2.forward(&self.conv2.forward(&y)?)?;
        let shortcut = match &self.downsample {
            Some(down) => down.forward(x)?,
            None => x.clone(),
        };
        y.add(&shortcut)?.relu()
    }
}
