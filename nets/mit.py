"""Mix Transformer MiT-B0..B2, SegFormer's encoder (Xie et al. 2021), computing what Hugging Face's transformers does.

Four stages, each: overlapping patch embedding (7x7/4, then 3x3/2 convs, symmetric padding, LayerNorm), pre-norm
transformer blocks (efficient self-attention whose keys and values come from an r x r / r conv + LayerNorm of the
map; Mix-FFN: linear, 3x3 depthwise conv, exact GELU, linear; stochastic depth on both residual branches), a final
LayerNorm.  The stage outputs, at strides 4/8/16/32 of any input size (ceil at each stride), are the taps.  There is
no dilation: output_stride is 32.  Every LayerNorm uses torch's default eps 1e-5, as transformers' modules do
(its config's layer_norm_eps is unused; the original NVlabs blocks use 1e-6).

Variables are named after the Hub checkpoints' keys (nvidia/mit-b0, nvidia/segformer-b0-finetuned-ade-512-512):
the key less `segformer.encoder.`, dots as scopes, under the net's scope; a Linear / Conv `weight` becomes
`weights` ([in, out], conv [kh, kw, in, out]), `bias` `biases`, a LayerNorm's `gamma` / `beta`:

    segformer.encoder.patch_embeddings.0.proj.weight         -> mit_b0/patch_embeddings/0/proj/weights
    segformer.encoder.block.1.0.attention.self.query.weight  -> mit_b0/block/1/0/attention/self/query/weights
    segformer.encoder.block.1.0.mlp.dwconv.dwconv.weight     -> mit_b0/block/1/0/mlp/dwconv/dwconv/weights
    segformer.encoder.layer_norm.3.bias                      -> mit_b0/layer_norm/3/beta
    classifier.weight (the ImageNet model's)                 -> mit_b0/classifier/weights

Weight decay (the arg scope's L2, hence AdamW's decoupled decay) reaches the kernels only, never a LayerNorm or a
bias: SegFormer's recipe.
"""
import collections
import math

import numpy as np

from nets import dropout as stateless
from utils.compat import add_arg_scope, slim, tf

Variant = collections.namedtuple("Variant", ["hidden_sizes", "depths"])
# nvidia/mit-b0..b2's config.json (the paper's Table 6); heads, reduction ratios, patch sizes are shared.
VARIANTS = {
    "mit_b0": Variant((32, 64, 160, 256), (2, 2, 2, 2)),
    "mit_b1": Variant((64, 128, 320, 512), (2, 2, 2, 2)),
    "mit_b2": Variant((64, 128, 320, 512), (3, 4, 6, 3)),
}
HEADS = (1, 2, 5, 8)
SR_RATIOS = (8, 4, 2, 1)
PATCH_SIZES = (7, 3, 3, 3)
STRIDES = (4, 2, 2, 2)
MLP_RATIO = 4
LAYER_NORM_EPSILON = 1e-5
DROP_PATH_RATE = 0.1  # transformers' and the paper's default; rates grow linearly from 0 over all blocks


def truncated_normal(shape, dtype=None, partition_info=None):
    """SegFormer's initialisation of linear layers, trunc_normal(std=0.02) (dtype None: float32)."""
    del partition_info
    return tf.truncated_normal(shape, stddev=0.02, dtype=dtype or tf.float32)


def fan_out_normal(shape, dtype=None, partition_info=None):
    """SegFormer's conv initialisation: N(0, 2 / fan_out), fan_out = kh * kw * out / groups (depthwise
    [kh, kw, C, 1]: kh * kw)."""
    del partition_info
    fan_out = shape[0] * shape[1] * shape[3]
    return tf.random_normal(shape, stddev=float(np.sqrt(2.0 / fan_out)), dtype=dtype or tf.float32)


def spatial(net):
    """(H, W) of an NHWC tensor: ints where static, scalar tensors otherwise."""
    static, dynamic = net.shape[1:3].as_list(), None
    if None in static:
        dynamic = tf.shape(net)
    return tuple(static[i] if static[i] is not None else dynamic[i + 1] for i in range(2))


@add_arg_scope
def dense(inputs, units, scope, weights_initializer=truncated_normal, weights_regularizer=None):
    """torch.nn.Linear on the last axis: `weights` [in, out] (torch's transposed), `biases`."""
    with tf.variable_scope(scope):
        depth = int(inputs.shape[-1])
        kernel = slim.model_variable("weights", [depth, units], initializer=weights_initializer,
                                     regularizer=weights_regularizer)
        biases = slim.model_variable("biases", [units], initializer=tf.zeros_initializer())
        flat = tf.reshape(inputs, [-1, depth])
        net = tf.nn.bias_add(tf.matmul(flat, kernel), biases)
        shape = tf.concat([tf.shape(inputs)[:-1], [units]], 0)
        net = tf.reshape(net, shape)
        net.set_shape(inputs.shape[:-1].concatenate([units]))
        return net


@add_arg_scope
def conv2d(inputs, filters, kernel_size, stride, scope, padding=0, depthwise=False,
           weights_initializer=fan_out_normal, weights_regularizer=None):
    """torch.nn.Conv2d with symmetric zero `padding` and a bias (depthwise: groups = channels)."""
    with tf.variable_scope(scope):
        depth = int(inputs.shape[-1])
        shape = [kernel_size, kernel_size, depth, 1 if depthwise else filters]
        kernel = slim.model_variable("weights", shape, initializer=weights_initializer,
                                     regularizer=weights_regularizer)
        biases = slim.model_variable("biases", [depth if depthwise else filters], initializer=tf.zeros_initializer())
        if padding:
            inputs = tf.pad(inputs, [[0, 0], [padding, padding], [padding, padding], [0, 0]])
        strides = [1, stride, stride, 1]
        if depthwise:
            net = tf.nn.depthwise_conv2d(inputs, kernel, strides, "VALID")
        else:
            net = tf.nn.conv2d(inputs, kernel, strides, "VALID")
        return tf.nn.bias_add(net, biases)


def layer_norm(inputs, scope):
    """torch.nn.LayerNorm over the channels (biased variance, eps 1e-5): `gamma`, `beta`."""
    with tf.variable_scope(scope):
        depth = int(inputs.shape[-1])
        gamma = slim.model_variable("gamma", [depth], initializer=tf.ones_initializer())
        beta = slim.model_variable("beta", [depth], initializer=tf.zeros_initializer())
        mean, variance = tf.nn.moments(inputs, [-1], keepdims=True)
        return (inputs - mean) * tf.math.rsqrt(variance + LAYER_NORM_EPSILON) * gamma + beta


def efficient_self_attention(net, heads, sr_ratio):
    """Multi-head attention of every position to the map reduced sr_ratio times (scope `attention`)."""
    height, width = spatial(net)
    batch = net.shape[0] if net.shape[0] is not None else tf.shape(net)[0]
    depth = int(net.shape[-1])
    head_depth = depth // heads

    def split_heads(tensor):  # [N, h, w, C] -> [N, heads, h * w, C / heads] (static sizes kept for MAC counts)
        h, w = spatial(tensor)
        tokens = h * w if isinstance(h, int) and isinstance(w, int) else -1
        tensor = tf.reshape(tensor, [batch, tokens, heads, head_depth])
        return tf.transpose(tensor, [0, 2, 1, 3])

    with tf.variable_scope("attention"):
        with tf.variable_scope("self"):
            query = split_heads(dense(net, depth, "query"))
            source = net
            if sr_ratio > 1:
                source = conv2d(net, depth, sr_ratio, sr_ratio, "sr")
                source = layer_norm(source, "layer_norm")
            key, value = split_heads(dense(source, depth, "key")), split_heads(dense(source, depth, "value"))
            scores = tf.matmul(query, key, transpose_b=True) * (head_depth ** -0.5)
            context = tf.matmul(tf.nn.softmax(scores, axis=-1), value)
            context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [batch, height, width, depth])
            context.set_shape(net.shape)
        with tf.variable_scope("output"):
            return dense(context, depth, "dense")


def mix_ffn(net):
    """Linear (x4) -> 3x3 depthwise conv -> exact GELU -> linear (scope `mlp`)."""
    depth = int(net.shape[-1])
    with tf.variable_scope("mlp"):
        hidden = dense(net, depth * MLP_RATIO, "dense1")
        with tf.variable_scope("dwconv"):
            hidden = conv2d(hidden, None, 3, 1, "dwconv", padding=1, depthwise=True)
        hidden = gelu(hidden)
        return dense(hidden, depth, "dense2")


def gelu(net):
    """Exact (erf) GELU, torch's nn.GELU() and transformers' "gelu" (tf.compat.v1 has no tf.nn.gelu)."""
    return 0.5 * net * (1.0 + tf.math.erf(net * (1.0 / math.sqrt(2.0))))


def drop_path(net, rate, is_training):
    """Stochastic depth: the whole branch of an example dropped (the rest scaled by 1 / keep), while training;
    stateless (nets/dropout.py), so a resumed run draws the masks the uninterrupted one would (rate 0: no op)."""
    return stateless.dropout(net, 1.0 - rate, is_training, whole_examples=True, scope="drop_path")


def transformer_block(net, heads, sr_ratio, drop_rate, is_training):
    """Pre-norm block: x + drop_path(attention(LN1 x)), then + drop_path(MixFFN(LN2 x))."""
    branch = efficient_self_attention(layer_norm(net, "layer_norm_1"), heads, sr_ratio)
    net = net + drop_path(branch, drop_rate, is_training)
    branch = mix_ffn(layer_norm(net, "layer_norm_2"))
    return net + drop_path(branch, drop_rate, is_training)


def check_output_stride(output_stride, name):
    if output_stride not in (None, 32):
        raise ValueError("%s: output_stride must be 32 (MiT has no dilated form), got %r" % (name, output_stride))


def mit_base(inputs, variant, is_training, drop_path_rate, end_points, scope_name):
    """The four stages in the current scope; end points `<scope>/stage1..4` (NHWC, after each stage's norm)."""
    total = sum(variant.depths)
    rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
    net, block_index = inputs, 0
    for stage, (depth, blocks) in enumerate(zip(variant.hidden_sizes, variant.depths)):
        with tf.variable_scope("patch_embeddings/%d" % stage):
            kernel = PATCH_SIZES[stage]
            net = conv2d(net, depth, kernel, STRIDES[stage], "proj", padding=kernel // 2)
            net = layer_norm(net, "layer_norm")
        for block in range(blocks):
            with tf.variable_scope("block/%d/%d" % (stage, block)):
                net = transformer_block(net, HEADS[stage], SR_RATIOS[stage], rates[block_index], is_training)
            block_index += 1
        net = layer_norm(net, "layer_norm/%d" % stage)
        end_points["%s/stage%d" % (scope_name, stage + 1)] = net
    return net


def _mit(name, inputs, num_classes=1000, is_training=True, base_only=False, output_stride=None,
         drop_path_rate=DROP_PATH_RATE, reuse=None, scope=None):
    check_output_stride(output_stride, name)
    variant = VARIANTS[name]
    end_points = {}
    with tf.variable_scope(scope or name, name, [inputs], reuse=reuse) as sc:
        net = mit_base(inputs, variant, is_training, drop_path_rate, end_points, sc.original_name_scope.rstrip("/"))
        if base_only:
            return net, end_points
        # SegformerForImageClassification: mean of the last stage's tokens, a linear classifier
        net = end_points["global_pool"] = tf.reduce_mean(net, [1, 2])
        if not num_classes:
            return net, end_points
        logits = end_points["logits"] = dense(net, num_classes, "classifier")
        end_points["predictions"] = tf.nn.softmax(logits)
        return logits, end_points


def _net_function(name):
    def net(inputs, num_classes=1000, is_training=True, base_only=False, output_stride=None,
            drop_path_rate=DROP_PATH_RATE, reuse=None, scope=None):
        return _mit(name, inputs, num_classes, is_training, base_only, output_stride, drop_path_rate, reuse, scope)
    net.__name__ = net.__qualname__ = name
    variant = VARIANTS[name]
    net.__doc__ = ("%s: Mix Transformer, widths %s, depths %s.  base_only: the last stage's map (no classifier); "
                   "else mean-pooled, then `classifier`." % (name, variant.hidden_sizes, variant.depths))
    net.default_image_size = 224
    return net


mit_b0 = _net_function("mit_b0")
mit_b1 = _net_function("mit_b1")
mit_b2 = _net_function("mit_b2")


def mit_arg_scope(weight_decay=1e-4):
    """L2 on the linear and conv kernels only (LayerNorms and biases are never decayed)."""
    regularizer = slim.l2_regularizer(weight_decay) if weight_decay else None
    with slim.arg_scope([dense, conv2d], weights_regularizer=regularizer) as sc:
        return sc


def macs_of_attention(name, height, width):
    """Multiply-accumulates of the attention products (Q K^T and A V) at an input size: the paper's GFLOPs
    (mmcv's module counter) leave them out, ours count them."""
    variant, total = VARIANTS[name], 0
    for stage, depth in enumerate(variant.hidden_sizes):
        height, width = math.ceil(height / STRIDES[stage]), math.ceil(width / STRIDES[stage])
        ratio = SR_RATIOS[stage]
        keys = ((height - ratio) // ratio + 1) * ((width - ratio) // ratio + 1)
        total += variant.depths[stage] * 2 * height * width * keys * depth
    return total
