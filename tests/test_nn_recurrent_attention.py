"""LSTM / GRU / RNN against NumPy implementations of their equations, and
MultiheadAttention against NumPy softmax(Q K^T / sqrt(d)) V."""
import numpy as np
import pytest

import tinylatent as tl
from tinylatent import nn


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def np_lstm_step(x, h, c, w_ih, w_hh, b_ih, b_hh):
    g = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
    i, f, gg, o = np.split(g, 4, axis=-1)  # PyTorch's gate order
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(gg)
    return sigmoid(o) * np.tanh(c), c


def np_gru_step(x, h, w_ih, w_hh, b_ih, b_hh):
    gi, gh = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
    ir, iz, in_ = np.split(gi, 3, axis=-1)
    hr, hz, hn = np.split(gh, 3, axis=-1)
    r, z = sigmoid(ir + hr), sigmoid(iz + hz)
    n = np.tanh(in_ + r * hn)
    return (1 - z) * n + z * h


def params(m, sfx=""):
    return [getattr(m, f"{n}{sfx}").detach().numpy() for n in ("weight_ih", "weight_hh", "bias_ih",
                                                        "bias_hh")]


def test_parameter_names_shapes_and_init_like_pytorch():
    lstm = nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    names = [(n, p.shape) for n, p in lstm.named_parameters()]
    assert names[:4] == [("weight_ih_l0", (16, 3)), ("weight_hh_l0", (16, 4)),
                         ("bias_ih_l0", (16,)), ("bias_hh_l0", (16,))]
    assert names[4][0] == "weight_ih_l0_reverse" and names[8] == ("weight_ih_l1", (16, 8))
    assert len(names) == 16
    assert all(np.abs(p.detach().numpy()).max() <= 0.5 for p in lstm.parameters())  # U(+-1/sqrt(4))
    gru = nn.GRU(3, 5, bias=False)
    assert [(n, p.shape) for n, p in gru.named_parameters()] == \
        [("weight_ih_l0", (15, 3)), ("weight_hh_l0", (15, 5))]
    cell = nn.LSTMCell(3, 4)
    assert [n for n, _ in cell.named_parameters()] == ["weight_ih", "weight_hh", "bias_ih",
                                                       "bias_hh"]


def test_lstm_cell_and_layer_against_numpy():
    tl.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 2, 3))                     # (T, B, in)
    h0, c0 = rng.standard_normal((2, 1, 2, 4))
    lstm = nn.LSTM(3, 4).double()
    out, (h_n, c_n) = lstm(tl.tensor(x), (tl.tensor(h0), tl.tensor(c0)))
    h, c = h0[0], c0[0]
    ref = []
    for t in range(5):
        h, c = np_lstm_step(x[t], h, c, *params(lstm, "_l0"))
        ref.append(h)
    np.testing.assert_allclose(out.detach().numpy(), np.stack(ref), atol=1e-12)
    np.testing.assert_allclose(h_n.detach().numpy()[0], h, atol=1e-12)
    np.testing.assert_allclose(c_n.detach().numpy()[0], c, atol=1e-12)
    cell = nn.LSTMCell(3, 4).double()
    hc, cc = cell(tl.tensor(x[0]))
    ref_h, ref_c = np_lstm_step(x[0], np.zeros((2, 4)), np.zeros((2, 4)), *params(cell))
    np.testing.assert_allclose(hc.detach().numpy(), ref_h, atol=1e-12)
    np.testing.assert_allclose(cc.detach().numpy(), ref_c, atol=1e-12)


def test_gru_two_layers_batch_first_against_numpy():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 3))                     # (B, T, in) with batch_first
    gru = nn.GRU(3, 5, num_layers=2, batch_first=True).double()
    out, h_n = gru(tl.tensor(x))
    assert out.shape == (2, 4, 5) and h_n.shape == (2, 2, 5)
    layer_in = x.transpose(1, 0, 2)
    finals = []
    for layer in range(2):
        h = np.zeros((2, 5))
        outs = []
        for t in range(4):
            h = np_gru_step(layer_in[t], h, *params(gru, f"_l{layer}"))
            outs.append(h)
        layer_in = np.stack(outs)
        finals.append(h)
    np.testing.assert_allclose(out.detach().numpy(), layer_in.transpose(1, 0, 2), atol=1e-12)
    np.testing.assert_allclose(h_n.detach().numpy(), np.stack(finals), atol=1e-12)
    cell = nn.GRUCell(3, 5).double()
    np.testing.assert_allclose(cell(tl.tensor(x[:, 0])).detach().numpy(),
                               np_gru_step(x[:, 0], np.zeros((2, 5)), *params(cell)),
                               atol=1e-12)


def test_bidirectional_reverse_direction_reads_backwards():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 1, 2))
    rnn = nn.RNN(2, 3, bidirectional=True).double()
    out, h_n = rnn(tl.tensor(x))
    w_ih, w_hh, b_ih, b_hh = params(rnn, "_l0_reverse")
    h = np.zeros((1, 3))
    rev = [None] * 4
    for t in (3, 2, 1, 0):
        h = np.tanh(x[t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh)
        rev[t] = h
    np.testing.assert_allclose(out.detach().numpy()[..., 3:], np.stack(rev), atol=1e-12)
    np.testing.assert_allclose(h_n.detach().numpy()[1], rev[0], atol=1e-12)


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
def test_recurrent_gradcheck(mode):
    m = getattr(nn, mode)(2, 3, num_layers=2).double()
    x = tl.randn(3, 2, 2, dtype=tl.float64, requires_grad=True)
    ps = list(m.parameters())

    def f(x, *weights):
        out, _ = m(x)
        return out

    assert tl.gradcheck(f, [x, ps[0], ps[5]])


@pytest.mark.parametrize("cell", ["LSTMCell", "GRUCell"])
def test_fused_cell_second_order(cell):
    # the fused pointwise step recomputes its backward in Tensor ops under create_graph
    m = getattr(nn, cell)(2, 3).double()
    x = tl.randn(2, 2, dtype=tl.float64, requires_grad=True)
    h = tl.randn(2, 3, dtype=tl.float64, requires_grad=True)
    c = tl.randn(2, 3, dtype=tl.float64, requires_grad=True)
    if cell == "LSTMCell":
        fn = lambda x, h, c: m(x, (h, c))  # noqa: E731
        assert tl.gradcheck(fn, [x, h, c])
        assert tl.gradgradcheck(fn, [x, h, c])
    else:
        assert tl.gradcheck(lambda x, h: m(x, h), [x, h])
        assert tl.gradgradcheck(lambda x, h: m(x, h), [x, h])


def test_recurrent_errors_and_unbatched():
    lstm = nn.LSTM(3, 4).double()
    with pytest.raises(ValueError, match="input_size=3"):
        lstm(tl.randn(5, 2, 2, dtype=tl.float64))
    with pytest.raises(ValueError, match=r"h0 must have shape \(1, 2, 4\)"):
        lstm(tl.randn(5, 2, 3, dtype=tl.float64),
             (tl.zeros(1, 3, 4, dtype=tl.float64), tl.zeros(1, 2, 4, dtype=tl.float64)))
    x = tl.randn(5, 3, dtype=tl.float64)
    out, (h, c) = lstm(x)
    out_b, (h_b, _) = lstm(x.unsqueeze(1))
    np.testing.assert_allclose(out.detach().numpy(), out_b.detach().numpy()[:, 0])
    assert h.shape == (1, 4)


# ---------------------------------------------------------------------- attention
def np_mha(q, k, v, m, keep=None):
    """q (L, B, E), k/v (S, B, E); keep (B, L, S) or None. Returns out, mean weights."""
    e, h = m.embed_dim, m.num_heads
    hd = e // h
    w, b = m.in_proj_weight.detach().numpy(), m.in_proj_bias.detach().numpy()

    def split(x, i):  # (T, B, E) -> (B, h, T, hd)
        y = x @ w[i * e:(i + 1) * e].T + b[i * e:(i + 1) * e]
        return y.reshape(x.shape[0], x.shape[1], h, hd).transpose(1, 2, 0, 3)
    qh, kh, vh = split(q, 0), split(k, 1), split(v, 2)
    s = qh @ kh.transpose(0, 1, 3, 2) / np.sqrt(hd)        # (B, h, L, S)
    if keep is not None:
        s = np.where(keep[:, None], s, -np.inf)
    a = np.exp(s - s.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    o = (a @ vh).transpose(2, 0, 1, 3).reshape(q.shape[0], q.shape[1], e)
    return o @ m.out_proj.weight.detach().numpy().T + m.out_proj.bias.detach().numpy(), a.mean(1)


def test_multihead_attention_against_numpy():
    rng = np.random.default_rng(3)
    m = nn.MultiheadAttention(8, 2).double()
    with tl.no_grad():
        m.in_proj_bias.copy_(tl.tensor(rng.standard_normal(24)))
    assert [n for n, _ in m.named_parameters()] == ["in_proj_weight", "in_proj_bias",
                                                    "out_proj.weight", "out_proj.bias"]
    q, k, v = rng.standard_normal((4, 3, 8)), rng.standard_normal((5, 3, 8)), \
        rng.standard_normal((5, 3, 8))
    out, weights = m(tl.tensor(q), tl.tensor(k), tl.tensor(v))
    ref_out, ref_w = np_mha(q, k, v, m)
    np.testing.assert_allclose(out.detach().numpy(), ref_out, atol=1e-12)
    np.testing.assert_allclose(weights.detach().numpy(), ref_w, atol=1e-12)
    # masks: True = masked out (torch.nn.MultiheadAttention's convention)
    kpm = np.zeros((3, 5), bool)
    kpm[0, 3:] = True
    am = np.triu(np.ones((4, 5), bool), 2)
    keep = ~am[None] & ~kpm[:, None, :]
    ref_out, ref_w = np_mha(q, k, v, m, keep)
    for need_weights in (True, False):  # explicit path and the SDPA op path
        out, w = m(tl.tensor(q), tl.tensor(k), tl.tensor(v), key_padding_mask=tl.tensor(kpm),
                   attn_mask=tl.tensor(am), need_weights=need_weights)
        np.testing.assert_allclose(out.detach().numpy(), ref_out, atol=1e-12)
    assert w is None
    # batch_first gives the same numbers transposed
    mb = nn.MultiheadAttention(8, 2, batch_first=True).double()
    mb.load_state_dict(m.state_dict())
    out_b, _ = mb(*(tl.tensor(a.transpose(1, 0, 2)) for a in (q, k, v)))
    np.testing.assert_allclose(out_b.detach().numpy(), np_mha(q, k, v, m)[0].transpose(1, 0, 2),
                               atol=1e-12)


def test_multihead_attention_gradcheck_and_errors():
    m = nn.MultiheadAttention(4, 2, kdim=3, vdim=2).double()
    assert [n for n, _ in m.named_parameters()][:3] == ["q_proj_weight", "k_proj_weight",
                                                        "v_proj_weight"]
    q = tl.randn(3, 2, 4, dtype=tl.float64, requires_grad=True)
    k = tl.randn(2, 2, 3, dtype=tl.float64, requires_grad=True)
    v = tl.randn(2, 2, 2, dtype=tl.float64, requires_grad=True)
    kpm = tl.tensor([[False, True], [False, False]])
    assert tl.gradcheck(lambda q, k, v, w: m(q, k, v, key_padding_mask=kpm)[0],
                        [q, k, v, m.q_proj_weight])
    with pytest.raises(ValueError, match="divisible by num_heads"):
        nn.MultiheadAttention(6, 4)
    with pytest.raises(ValueError, match="key_padding_mask must be"):
        m(q, k, v, key_padding_mask=tl.zeros(2, 3, dtype=tl.bool_))


def test_attention_dropout_only_in_training():
    m = nn.MultiheadAttention(4, 1, dropout=0.5, generator=tl.Generator(0)).double()
    x = tl.randn(3, 2, 4, dtype=tl.float64)
    m.eval()
    a, _ = m(x, x, x)
    b, _ = m(x, x, x)
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    m.train()
    c, _ = m(x, x, x)
    assert not np.allclose(a.detach().numpy(), c.detach().numpy())


# ---------------------------------------------------------------------- transformer
def test_transformer_encoder_layer_composition_and_names():
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0).double()
    names = [n for n, _ in layer.named_parameters()]
    assert names[:4] == ["self_attn.in_proj_weight", "self_attn.in_proj_bias",
                         "self_attn.out_proj.weight", "self_attn.out_proj.bias"]
    assert names[4:] == ["linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias",
                         "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"]
    x = tl.randn(5, 2, 8, dtype=tl.float64)
    a = x + layer.self_attn(x, x, x)[0]
    h = layer.norm1(a)
    ref = layer.norm2(h + layer.linear2(layer.linear1(h).relu()))  # post-norm (the paper's)
    np.testing.assert_allclose(layer(x).detach().numpy(), ref.detach().numpy(), atol=1e-12)
    enc = nn.TransformerEncoder(layer, 2)
    assert enc.layers[0].linear1.weight is not enc.layers[1].linear1.weight  # copies
    assert len(list(enc.parameters())) == 2 * len(names)


def test_transformer_causal_mask_hides_the_future():
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0,
                                                           batch_first=True,
                                                           norm_first=True), 2).double()
    x = tl.randn(2, 6, 8, dtype=tl.float64)
    y = enc(x, is_causal=True).detach().numpy()
    x2 = x.numpy().copy()
    x2[:, 4:] += 10.0  # change only the last two positions
    y2 = enc(tl.tensor(x2), is_causal=True).detach().numpy()
    np.testing.assert_allclose(y[:, :4], y2[:, :4], atol=1e-12)
    assert not np.allclose(y[:, 4:], y2[:, 4:])
    xs = tl.randn(1, 3, 8, dtype=tl.float64, requires_grad=True)
    w = enc.layers[0].linear1.weight
    assert tl.gradcheck(lambda x, w: enc(x, is_causal=True), [xs, w])


def test_transformer_decoder_masks():
    layer = nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0)
    assert [n for n, _ in layer.named_children()] == [
        "self_attn", "multihead_attn", "linear1", "dropout", "linear2", "norm1", "norm2",
        "norm3", "dropout1", "dropout2", "dropout3"]
    dec = nn.TransformerDecoder(layer, 2, norm=nn.LayerNorm(8)).double()
    rng = np.random.default_rng(4)
    tgt, mem = rng.standard_normal((5, 2, 8)), rng.standard_normal((6, 2, 8))
    pad = np.zeros((2, 6), bool)
    pad[1, 4:] = True  # the last two memory slots of sample 1 are padding

    def run(tgt, mem):
        return dec(tl.tensor(tgt), tl.tensor(mem), memory_key_padding_mask=tl.tensor(pad),
                   tgt_is_causal=True).detach().numpy()
    y = run(tgt, mem)
    tgt2, mem2 = tgt.copy(), mem.copy()
    tgt2[3:] += 5.0        # future target positions
    mem2[4:, 1] += 5.0     # padded memory of sample 1
    y2 = run(tgt2, mem2)
    np.testing.assert_allclose(y2[:3], y[:3], atol=1e-12)
    assert not np.allclose(y2[3:], y[3:])
    mem3 = mem.copy()
    mem3[4:, 1] += 5.0
    np.testing.assert_allclose(run(tgt, mem3), y, atol=1e-12)
    t = tl.tensor(tgt[:2, :1], requires_grad=True)
    m = tl.tensor(mem[:3, :1], requires_grad=True)
    assert tl.gradcheck(lambda t, m: dec(t, m, tgt_is_causal=True), [t, m])


@pytest.mark.parametrize("batch_first,norm_first", [(False, False), (True, True)])
def test_nn_transformer_matches_torch_from_its_state_dict(batch_first, norm_first):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = torch.nn.Transformer(d_model=8, nhead=2, num_encoder_layers=2,
                                  num_decoder_layers=2, dim_feedforward=16, dropout=0.0,
                                  batch_first=batch_first, norm_first=norm_first).double()
    ours = tl.nn.Transformer(d_model=8, nhead=2, num_encoder_layers=2, num_decoder_layers=2,
                             dim_feedforward=16, dropout=0.0, batch_first=batch_first,
                             norm_first=norm_first).double()
    sd = theirs.state_dict()
    assert list(ours.state_dict()) == list(sd)
    ours.load_state_dict({k: tl.tensor(v.numpy()) for k, v in sd.items()})
    rng = np.random.default_rng(1)
    s, t, n = 5, 4, 3
    shape = lambda length: (n, length, 8) if batch_first else (length, n, 8)  # noqa: E731
    src, tgt = rng.normal(size=shape(s)), rng.normal(size=shape(t))
    pad = np.zeros((n, s), dtype=bool)
    pad[0, -2:] = True                                 # the first sequence is shorter
    mask = tl.nn.Transformer.generate_square_subsequent_mask(t, dtype=tl.float64)
    mask_t = torch.nn.Transformer.generate_square_subsequent_mask(t, dtype=torch.float64)
    np.testing.assert_array_equal(mask.numpy(), mask_t.numpy())
    x, y = tl.tensor(src, requires_grad=True), tl.tensor(tgt)
    xt = torch.tensor(src, requires_grad=True)
    out = ours(x, y, tgt_mask=mask, src_key_padding_mask=tl.tensor(pad),
               memory_key_padding_mask=tl.tensor(pad))
    out_t = theirs(xt, torch.tensor(tgt), tgt_mask=mask_t,
                   src_key_padding_mask=torch.tensor(pad),
                   memory_key_padding_mask=torch.tensor(pad))
    np.testing.assert_allclose(out.detach().numpy(), out_t.detach().numpy(), rtol=1e-9,
                               atol=1e-11)
    up = rng.normal(size=out.shape)
    (out * tl.tensor(up)).sum().backward()
    (out_t * torch.tensor(up)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-8, atol=1e-10)
    named = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), named[name].grad.numpy(), rtol=1e-8,
                                   atol=1e-10, err_msg=name)
    with pytest.raises(ValueError, match="same batch size"):
        ours(x, tl.tensor(rng.normal(size=shape(t))[:2] if batch_first else
                          rng.normal(size=shape(t))[:, :2]))
