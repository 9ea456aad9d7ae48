"""FARGAN, the pretrained speech vocoder of Opus 1.5, as a batched torch module (the torch twin).

Valin et al., "Very low complexity speech synthesis using framewise autoregressive GAN (FARGAN)
with pitch prediction", arXiv 2405.21069.  Written from the paper and the arithmetic of the C
inference in the opus 1.5.2 source (``dnn/fargan.c``, ``dnn/nnet.c``); the weights come from its
``dnn/fargan_data.c`` (:mod:`semanticodec_rt.weights.fargan_tables`, BSD-3-Clause, see
``assets/FARGAN_LICENSE``).

Per 10 ms frame (160 samples at 16 kHz) FARGAN reads 20 features: 18 Bark cepstral coefficients,
a pitch term ``f18`` (period ``round(256 / 2^(f18 + 1.5))`` samples) and a pitch correlation.

* **Conditioning** (per frame): ``[features || pitch embedding]`` -> dense (tanh) -> causal conv
  over 3 frames (tanh) -> dense (tanh) -> 4 x 80 values, one vector per 2.5 ms subframe.
* **Signal network** (per 40-sample subframe, autoregressive): a gain from the conditioning
  (``exp``); the excitation predicted from one pitch period back in the past output (44
  samples, gain-normalised, clipped to [-1, 1]) and the last 40 output samples; a frame-wise
  conv (kernel 2) with a GLU; three GRUs, each fed the pitch prediction scaled by a learned gate,
  each followed by a GLU; a dense + GLU over the skip connections; a tanh output times the gain.
  The output before de-emphasis (``y[n] += 0.85 y[n-1]``) feeds the pitch buffer.
* The period used by a frame's subframes is the *previous* frame's (the C code's
  ``last_period``): the features of frame t arrive one frame ahead of its pitch prediction.

``quantized=True`` follows the arithmetic of the opus x86 AVX2 build (what ``fargan_demo`` runs
here): each int8 layer's input becomes ``u = clamp(round(127 x + 127), 0, 255)``, products with
``W_int8`` are summed in adjacent pairs that saturate to int16 (``vpmaddubsw``), then
``scale * sum + subias``; tanh and sigmoid are opus's rational approximations.  ``False`` (the
default) runs the dense float equivalent ``127 * scale * W_int8`` with exact activations and is
differentiable (for training).

Shapes: features ``[B, T, 20]`` float32; pcm ``[B, T * 160]`` float32 in [-1, 1] (16 kHz).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

SAMPLE_RATE = 16000
NB_FEATURES = 20  # 18 cepstral + pitch + pitch correlation
FRAME = 160  # samples per 10 ms frame
SUBFRAMES = 4
SUBFRAME = 40
COND = 80  # conditioning values per subframe
PITCH_MAX = 256  # pitch buffer (longest period)
PITCH_MIN = 32
DEEMPHASIS = 0.85
PRIME_FRAMES = 5  # frames of features the continuation start reads (fargan_cont)
SIG_INPUT = COND + 2 * SUBFRAME + 4  # 164: conditioning, pitch prediction (44), previous output

#: FARGAN's linear layers as ``init_fargan`` declares them: (name, inputs, outputs, has bias)
FARGAN_LAYERS = (
    ("cond_net_pembed", 224, 12, False),  # an embedding table, read by row (no bias used)
    ("cond_net_fdense1", 32, 64, True),
    ("cond_net_fconv1", 192, 128, True),
    ("cond_net_fdense2", 128, 320, True),
    ("sig_net_cond_gain_dense", 80, 1, True),
    ("sig_net_fwc0_conv", 328, 192, True),
    ("sig_net_fwc0_glu_gate", 192, 192, True),
    ("sig_net_gru1_input", 272, 480, False),
    ("sig_net_gru1_recurrent", 160, 480, False),
    ("sig_net_gru2_input", 240, 384, False),
    ("sig_net_gru2_recurrent", 128, 384, False),
    ("sig_net_gru3_input", 208, 384, False),
    ("sig_net_gru3_recurrent", 128, 384, False),
    ("sig_net_gru1_glu_gate", 160, 160, True),
    ("sig_net_gru2_glu_gate", 128, 128, True),
    ("sig_net_gru3_glu_gate", 128, 128, True),
    ("sig_net_skip_glu_gate", 128, 128, True),
    ("sig_net_skip_dense", 688, 128, True),
    ("sig_net_sig_dense_out", 128, 40, True),
    ("sig_net_gain_dense_out", 192, 4, True),
)


def pitch_period(f18: torch.Tensor) -> torch.Tensor:
    """The pitch feature -> period in samples: ``floor(0.5 + 256 / 2^(f18 + 1.5))`` (int64)."""
    return torch.floor(0.5 + 256.0 / torch.pow(2.0, f18.double() + 1.5)).long()


@dataclass
class FarganState:
    """Everything FARGAN carries from one frame to the next (batch first)."""

    conv1: torch.Tensor  # [B, 2 * 64] conditioning conv history (2 frames)
    fwc0: torch.Tensor  # [B, 164] frame-wise conv history (1 subframe input)
    gru1: torch.Tensor  # [B, 160]
    gru2: torch.Tensor  # [B, 128]
    gru3: torch.Tensor  # [B, 128]
    pitch_buf: torch.Tensor  # [B, 256] past output before de-emphasis
    deemph: torch.Tensor  # [B] de-emphasis memory
    last_period: torch.Tensor  # [B] int64: period of the previous frame


class _Linear(nn.Module):
    """One FARGAN layer: float ``weight`` or ``weight_int8`` + ``scale``; optional ``bias``."""

    def __init__(self, n_in: int, n_out: int, int8: bool, bias: bool):
        super().__init__()
        self.n_in, self.n_out = n_in, n_out
        if int8:
            self.register_buffer("weight_int8", torch.zeros(n_out, n_in, dtype=torch.int8))
            self.register_buffer("scale", torch.zeros(n_out))
            # bias - 127 * scale * rowsum(W): the bias the unsigned-input products need
            self.register_buffer("subias", torch.zeros(n_out))
        else:
            self.weight = nn.Parameter(torch.zeros(n_out, n_in))
        self.bias = nn.Parameter(torch.zeros(n_out)) if bias else None

    @property
    def int8(self) -> bool:
        return hasattr(self, "weight_int8")

    def dense_weight(self) -> torch.Tensor:
        """``[out, in]`` float weight (the int8 layers' float equivalent)."""
        if self.int8:
            return self.weight_int8.float() * (127.0 * self.scale)[:, None]
        return self.weight

    def forward(self, x: torch.Tensor, quantized: bool = False) -> torch.Tensor:
        if self.int8 and quantized:
            return self._int8_product(x) * self.scale + self.subias
        y = x @ self.dense_weight().t()
        return y if self.bias is None else y + self.bias

    def _int8_product(self, x: torch.Tensor) -> torch.Tensor:
        """``sum_pairs sat16(u_j w_j + u_j+1 w_j+1)`` with ``u`` the unsigned 8-bit input."""
        u = torch.round(127.0 * x.double() + 127.0).clamp(0, 255)  # round half even, as cvtps
        prod = u[:, None, :] * self.weight_int8.double()[None]  # [B, out, in]
        pairs = prod.reshape(*prod.shape[:2], -1, 2).sum(-1).clamp(-32768, 32767)
        return pairs.sum(-1).float()


def tanh_approx(x: torch.Tensor) -> torch.Tensor:
    """opus's rational tanh (``dnn/vec_avx.h``; its reciprocal estimate replaced by a division)."""
    x2 = x * x
    num = ((0.60863042 * x2 + 96.39235687) * x2 + 952.52801514) * x
    den = (11.88600922 * x2 + 413.36801147) * x2 + 952.72399902
    return (num / den).clamp(-1.0, 1.0)


def sigmoid_approx(x: torch.Tensor) -> torch.Tensor:
    """opus's rational sigmoid (same source)."""
    x2 = x * x
    num = ((0.00950985 * x2 + 6.02452230) * x2 + 238.13200378) * x
    den = (0.74287558 * x2 + 103.34200287) * x2 + 952.72399902
    return (num / den + 0.5).clamp(0.0, 1.0)


def _tanh(c_arith: bool, x: torch.Tensor) -> torch.Tensor:
    return tanh_approx(x) if c_arith else torch.tanh(x)


def _sigmoid(c_arith: bool, x: torch.Tensor) -> torch.Tensor:
    return sigmoid_approx(x) if c_arith else torch.sigmoid(x)


class FARGAN(nn.Module):
    """The vocoder; build it with :meth:`from_tensors` (the shipped weights: ``load_fargan``).

    Args:
        int8_layers: names of the layers stored as int8 (the opus tables' choice).
    """

    def __init__(self, int8_layers: frozenset[str] = frozenset()):
        super().__init__()
        self.layers = nn.ModuleDict({
            name: _Linear(n_in, n_out, name in int8_layers, bias)
            for name, n_in, n_out, bias in FARGAN_LAYERS
        })

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> "FARGAN":
        int8 = frozenset(k.split(".")[0] for k in tensors if k.endswith(".weight_int8"))
        model = cls(int8)
        model.layers.load_state_dict(tensors, strict=True)
        return model.eval()

    @classmethod
    def random(cls, seed: int = 0) -> "FARGAN":
        """Float layers with small random weights (graph and timing checks, not audio)."""
        gen = torch.Generator().manual_seed(seed)
        model = cls()
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
        return model.eval()

    def dense_layers(self) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """``[(weight [out, in], bias or None)]`` in ``FARGAN_LAYERS`` order, float (int8 layers as
        their float equivalent): what the C++ kernel takes."""
        return [(layer.dense_weight().detach(), None if layer.bias is None else layer.bias.detach())
                for layer in self.layers.values()]

    def kernel(self):
        """A C++ streaming synthesiser with these weights (:class:`semanticodec_rt.ops.fargan.FarganKernel`)."""
        from ...ops.fargan import FarganKernel

        return FarganKernel(self.dense_layers())

    def _l(self, name: str, x: torch.Tensor, quantized: bool) -> torch.Tensor:
        return self.layers[name](x, quantized)

    # -- state -----------------------------------------------------------------------------------
    def initial_state(self, batch: int, device=None) -> FarganState:
        z = lambda n: torch.zeros(batch, n, device=device)  # noqa: E731
        return FarganState(conv1=z(128), fwc0=z(SIG_INPUT), gru1=z(160), gru2=z(128), gru3=z(128),
                           pitch_buf=z(PITCH_MAX), deemph=torch.zeros(batch, device=device),
                           last_period=torch.zeros(batch, dtype=torch.long, device=device))

    # -- pieces ----------------------------------------------------------------------------------
    def _cond(self, st: FarganState, features: torch.Tensor, period: torch.Tensor, q: bool) -> torch.Tensor:
        """One frame's features ``[B, 20]`` -> ``[B, 320]`` conditioning (updates the conv history)."""
        emb = self.layers["cond_net_pembed"].dense_weight().t()  # [224, 12]
        pemb = emb[(period - PITCH_MIN).clamp(0, 223)]
        x = _tanh(q, self._l("cond_net_fdense1", torch.cat([features, pemb], -1), q))
        window = torch.cat([st.conv1, x], -1)  # 3 frames of 64
        st.conv1 = window[:, 64:]
        x = _tanh(q, self._l("cond_net_fconv1", window, q))
        return _tanh(q, self._l("cond_net_fdense2", x, q))

    def _glu(self, name: str, x: torch.Tensor, q: bool) -> torch.Tensor:
        return x * _sigmoid(q, self._l(name, x, q))

    def _gru(self, n: int, st_h: torch.Tensor, x: torch.Tensor, q: bool) -> torch.Tensor:
        """The opus GRU: ``h~ = tanh(W_h x + r * (U_h h))``, ``h' = z h + (1 - z) h~``."""
        zrh = self._l(f"sig_net_gru{n}_input", x, q)
        rec = self._l(f"sig_net_gru{n}_recurrent", st_h, q)
        size = st_h.shape[-1]
        zr = _sigmoid(q, zrh[:, : 2 * size] + rec[:, : 2 * size])
        z, r = zr[:, :size], zr[:, size:]
        h = _tanh(q, zrh[:, 2 * size :] + r * rec[:, 2 * size :])
        return z * st_h + (1 - z) * h

    def _pitch_prediction(self, st: FarganState, period: torch.Tensor, gain_1: torch.Tensor) -> torch.Tensor:
        """``[B, 44]``: the past output one period back (repeating within the period), gain-normalised."""
        p = PITCH_MAX - period[:, None] - 2 + torch.arange(SUBFRAME + 4, device=period.device)
        # Past the end of the buffer the C loop steps back one period at each crossing.
        over = p >= PITCH_MAX
        wrapped = PITCH_MAX - period[:, None] + torch.remainder(p - PITCH_MAX, period[:, None])
        p = torch.where(over, wrapped, p).clamp(min=0)
        return (gain_1[:, None] * st.pitch_buf.gather(1, p)).clamp(-1.0, 1.0)

    def _subframe(self, st: FarganState, cond: torch.Tensor, period: torch.Tensor, q: bool) -> torch.Tensor:
        """One 40-sample subframe ``[B, 40]`` before de-emphasis (updates the state)."""
        gain = torch.exp(self._l("sig_net_cond_gain_dense", cond, q))  # [B, 1]
        gain_1 = 1.0 / (1e-5 + gain[:, 0])
        pred = self._pitch_prediction(st, period, gain_1)  # [B, 44]
        prev = (gain_1[:, None] * st.pitch_buf[:, PITCH_MAX - SUBFRAME :]).clamp(-1.0, 1.0)
        fwc0_in = torch.cat([cond, pred, prev], -1)  # [B, 164]
        x = _tanh(q, self._l("sig_net_fwc0_conv", torch.cat([st.fwc0, fwc0_in], -1), q))
        st.fwc0 = fwc0_in
        x = self._glu("sig_net_fwc0_glu_gate", x, q)  # [B, 192]
        gate = _sigmoid(q, self._l("sig_net_gain_dense_out", x, q))  # [B, 4]
        p = pred[:, 2 : 2 + SUBFRAME]
        st.gru1 = self._gru(1, st.gru1, torch.cat([x, gate[:, :1] * p, prev], -1), q)
        g1 = self._glu("sig_net_gru1_glu_gate", st.gru1, q)
        st.gru2 = self._gru(2, st.gru2, torch.cat([g1, gate[:, 1:2] * p, prev], -1), q)
        g2 = self._glu("sig_net_gru2_glu_gate", st.gru2, q)
        st.gru3 = self._gru(3, st.gru3, torch.cat([g2, gate[:, 2:3] * p, prev], -1), q)
        g3 = self._glu("sig_net_gru3_glu_gate", st.gru3, q)
        skip = torch.cat([g1, g2, g3, x, gate[:, 3:4] * p, prev], -1)  # [B, 688]
        skip = self._glu("sig_net_skip_glu_gate", _tanh(q, self._l("sig_net_skip_dense", skip, q)), q)
        pcm = _tanh(q, self._l("sig_net_sig_dense_out", skip, q)) * gain
        st.pitch_buf = torch.cat([st.pitch_buf[:, SUBFRAME:], pcm], -1)
        return pcm

    def _deemphasis(self, st: FarganState, pcm: torch.Tensor) -> torch.Tensor:
        out = []
        mem = st.deemph
        for i in range(pcm.shape[-1]):  # y[n] = x[n] + 0.85 y[n-1], sample by sample
            mem = pcm[:, i] + DEEMPHASIS * mem
            out.append(mem)
        st.deemph = mem
        return torch.stack(out, -1)

    # -- public ----------------------------------------------------------------------------------
    def prime(self, features: torch.Tensor, pcm: torch.Tensor | None = None,
              quantized: bool = False) -> FarganState:
        """Start a stream (the C ``fargan_cont``): ``features`` ``[B, 5, 20]`` of the first 5
        frames and the last 320 samples before the stream (``None``: silence)."""
        b = features.shape[0]
        st = self.initial_state(b, features.device)
        if pcm is None:
            pcm = torch.zeros(b, 2 * FRAME, device=features.device)
        period = torch.zeros(b, dtype=torch.long, device=features.device)
        for i in range(PRIME_FRAMES):
            st.last_period = period
            period = pitch_period(features[:, i, 18])
            cond = self._cond(st, features[:, i, :NB_FEATURES], period, quantized)
        # pre-emphasised history: x0[0] = 0, x0[n] = pcm[n] - 0.85 pcm[n-1]
        x0 = torch.cat([pcm.new_zeros(b, 1), pcm[:, 1:] - DEEMPHASIS * pcm[:, :-1]], -1)
        st.pitch_buf = torch.cat([st.pitch_buf[:, : PITCH_MAX - FRAME], x0[:, :FRAME]], -1)
        for k in range(SUBFRAMES):
            self._subframe(st, cond[:, k * COND : (k + 1) * COND], st.last_period, quantized)
            keep = x0[:, FRAME + k * SUBFRAME : FRAME + (k + 1) * SUBFRAME]
            st.pitch_buf = torch.cat([st.pitch_buf[:, : PITCH_MAX - SUBFRAME], keep], -1)
        st.deemph = pcm[:, -1].clone()
        return st

    def forward(self, features: torch.Tensor, state: FarganState,
                quantized: bool = False) -> tuple[torch.Tensor, FarganState]:
        """``[B, T, 20+]`` features -> ``[B, T * 160]`` pcm, carrying ``state`` (any T >= 0)."""
        st = FarganState(**vars(state))  # the caller's state object is left as it was
        out = []
        for t in range(features.shape[1]):
            f = features[:, t, :NB_FEATURES]
            period = pitch_period(f[:, 18])
            cond = self._cond(st, f, period, quantized)
            for k in range(SUBFRAMES):
                pcm = self._subframe(st, cond[:, k * COND : (k + 1) * COND], st.last_period, quantized)
                out.append(self._deemphasis(st, pcm))
            st.last_period = period
        pcm = torch.cat(out, -1) if out else features.new_zeros(features.shape[0], 0)
        return pcm, st

    @torch.no_grad()
    def synthesize(self, features: torch.Tensor, quantized: bool = False) -> torch.Tensor:
        """What ``fargan_demo -fargan-synthesis`` does: prime with the first 5 frames (and
        silence), then synthesise the rest: ``[B, T, 20+]`` -> ``[B, (T - 5) * 160]``."""
        st = self.prime(features[:, :PRIME_FRAMES, :NB_FEATURES], quantized=quantized)
        return self(features[:, PRIME_FRAMES:], st, quantized)[0]


def to_int16(pcm: torch.Tensor) -> torch.Tensor:
    """float pcm -> int16 as the C demo writes it: ``floor(0.5 + clamp(32768 x, +-32767))``."""
    return torch.floor(0.5 + (32768.0 * pcm).clamp(-32767.0, 32767.0)).to(torch.int16)


def gflop_per_second() -> float:
    """Multiply-adds x 2 of the linear layers per second of audio (the GRUs' products included)."""
    per_sub = sum(n_in * n_out for name, n_in, n_out, _ in FARGAN_LAYERS if name.startswith("sig_net"))
    per_frame = sum(n_in * n_out for name, n_in, n_out, _ in FARGAN_LAYERS
                    if name.startswith("cond_net") and name != "cond_net_pembed")
    return 2 * (SUBFRAMES * per_sub + per_frame) * (SAMPLE_RATE // FRAME) / 1e9
