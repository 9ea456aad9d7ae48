"""The speech route's decoder: token features -> FARGAN features -> 16 kHz audio.

Per token position (40 ms = 4 frames): the regression path (:mod:`.speech.regression`) gives
the mean features and the pitch logits; the flow residual (:mod:`.speech.flow`), sampled in
``steps`` Euler steps from noise seeded per (seed, position), adds what the mean smooths away
(``steps = 0``: regression only); the pitch is read off its categorical head
(:mod:`.speech.pitch`).  The features are then de-normalised and voiced by FARGAN, one stream
per batch item, in the C++ kernel (the torch twin where the extension is missing).

With ``cfg.speech.general_route`` the decoder has a second route for music and effects: a
regression path ``general`` from the same tokens to 64-bin log-mel frames
(:class:`~.speech.regression.MelRegressor`) voiced by an iSTFT-head vocoder ``mel_vocoder``
(:mod:`.synthesis.istft_vocoder`), and a router (:mod:`.speech.router`) that picks the route
per position from the tokens.  The two vocoders differ, so a switch fades the waveforms over
``route_fade_units`` positions.  Both paths' GRUs run at every position (each keeps its
context); a route whose weight is zero over a whole position (for every stream of the batch)
is not read out or voiced, and its vocoder restarts as at a stream start when a fade brings it
back: that halves the decoder's cost on settled content, and it is a function of the tokens
alone, so streamed still equals offline.  :attr:`SpeechDecoder.route` forces one route
("speech", "general": the other one is never voiced) or lets the router choose ("auto", the
default).

FARGAN is not part of this module's state (its weights are opus's, shipped once in
``assets/fargan.safetensors`` and named by their own sha256); whoever builds the codec attaches
it with :meth:`SpeechDecoder.attach_vocoder`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..audio.mel import N_MELS
from ..config import CodecConfig
from ..timing import StageTimes
from .diffusion.noise import window_noise
from .speech.flow import ResidualFlow
from .speech.pitch import decode_pitch
from .speech.regression import CONTINUOUS, FeatureRegressor, MelRegressor
from .speech.router import ROUTES, RouteClassifier, RouteState, decide, fade_weights
from .synthesis import stft_frames
from .synthesis.fargan import NB_FEATURES, PRIME_FRAMES
from .synthesis.istft_vocoder import ISTFTStream, ISTFTVocoder

#: feature columns the continuous outputs fill (cepstrum 0..17, pitch correlation 19)
CONTINUOUS_COLUMNS = tuple(range(18)) + (19,)
PITCH_COLUMN = 18
#: frames the general route's mel rows run ahead of their position (see MelRegressor): the
#: iSTFT window starts N_FFT / 2 - OFFSET = 240 samples before its frame, i.e. 1.5 frames
MEL_SHIFT = -(-(stft_frames.N_FFT // 2 - stft_frames.OFFSET) // stft_frames.HOP)


@dataclass
class DecoderState:
    """What a stream carries: the regression GRU state(s), positions seen, the vocoders."""

    regression: object = None
    position: int = 0  # index of the next position whose features are emitted
    vocoders: list = field(default_factory=list)
    general: object = None  # the general path's GRU state (general route only)
    router: RouteState = field(default_factory=RouteState)
    route_logit: torch.Tensor | None = None  # the router's latest logit [B]
    mel_stream: ISTFTStream | None = None  # the general route's vocoder stream
    mel_pending: torch.Tensor | None = None  # [B, n] its samples finalised but not yet emitted (None: none pushed)
    speech_idle: bool = False  # a route skipped at the last position: its vocoder restarts when next voiced
    general_idle: bool = False


class SpeechDecoder(nn.Module):
    """Args: cfg with a ``speech`` section."""

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        sp = cfg.speech
        self.cfg = cfg
        in_dim = cfg.vit.dim + sp.code_dim
        self.regressor = FeatureRegressor(in_dim, sp.dec_hidden, sp.unit_frames, sp.pitch_bins, sp.lookahead_units)
        self.flow = ResidualFlow(sp.unit_frames * CONTINUOUS, self.regressor.context_dim, sp.flow_hidden,
                                 sp.flow_layers)
        if sp.general_route:
            self.general = MelRegressor(in_dim, sp.dec_hidden, sp.unit_frames, N_MELS, sp.lookahead_units,
                                        MEL_SHIFT)
            self.mel_vocoder = ISTFTVocoder()
            self.router = RouteClassifier(in_dim, sp.router_hidden)
        self._route = "auto"
        # Feature statistics of the training data: the network works on normalised features.
        self.register_buffer("feature_mean", torch.zeros(NB_FEATURES))
        self.register_buffer("feature_std", torch.ones(NB_FEATURES))
        # Features of digital silence (opus analysis of zeros): what primes a vocoder stream.
        self.register_buffer("silence_features", torch.zeros(NB_FEATURES))
        object.__setattr__(self, "vocoder", None)  # attached by the builder (attach_vocoder)
        self.stage_times = StageTimes()

    def attach_vocoder(self, fargan) -> None:
        """Use ``fargan`` (:class:`~.synthesis.fargan.FARGAN`) to voice the features.  Set around
        ``nn.Module``'s registration, so the vocoder stays out of this module's state dict."""
        object.__setattr__(self, "vocoder", fargan)

    @property
    def route(self) -> str:
        """"auto" (the router picks per position), "speech" or "general" (forced)."""
        return self._route

    @route.setter
    def route(self, mode: str) -> None:
        if mode not in ROUTES:
            raise ValueError(f"route must be one of {ROUTES}, got {mode!r}")
        if mode != "speech" and not self.cfg.speech.general_route:
            raise ValueError(f"route {mode!r}: this model has no general-audio route")
        self._route = mode

    @torch.no_grad()
    def routes(self, cond: torch.Tensor) -> torch.Tensor:
        """Token features ``[B, U, in]`` -> the route in force at each emitted position
        ``[B, U - lookahead]`` bool (True: general), as a stream decodes it (the router's logit
        once ``lookahead`` more positions have arrived, hysteresis, :attr:`route` honoured)."""
        if not self.cfg.speech.general_route:
            return torch.zeros(cond.shape[0], max(0, cond.shape[1] - self.regressor.lookahead), dtype=torch.bool)
        prob = torch.sigmoid(self.router(cond))
        st = RouteState()
        la = self.regressor.lookahead
        return torch.stack([decide(prob[:, u], st, self._route) for u in range(la, cond.shape[1])], 1)

    # -- features ---------------------------------------------------------------------------------
    def normalise(self, features: torch.Tensor) -> torch.Tensor:
        """Raw ``[..., 20]`` -> the continuous targets ``[..., 19]`` in normalised units."""
        cols = list(CONTINUOUS_COLUMNS)
        return (features[..., cols] - self.feature_mean[cols]) / self.feature_std[cols]

    def to_features(self, cont: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Normalised continuous ``[..., 19]`` + pitch logits ``[..., P]`` -> raw ``[..., 20]``."""
        cols = list(CONTINUOUS_COLUMNS)
        raw = cont * self.feature_std[cols] + self.feature_mean[cols]
        out = raw.new_zeros(*raw.shape[:-1], NB_FEATURES)
        out[..., cols] = raw
        out[..., PITCH_COLUMN] = decode_pitch(logits)
        return out

    def position_features(self, out, steps: int, noise: torch.Tensor | None) -> torch.Tensor:
        """One position's regression output ``(cont, logits, ctx)`` -> raw features
        ``[B, F, 20]``, with the flow residual when ``steps > 0`` (``noise`` ``[B, F * 19]``)."""
        cont, logits, ctx = out
        if steps > 0:
            res = self.flow.sample(ctx, noise, steps)
            cont = cont + res.reshape(cont.shape)
        return self.to_features(cont, logits)

    def flow_noise(self, seed: int, position: int, batch: int) -> torch.Tensor:
        """``[B, F * 19]`` noise of one position, from (seed, position) only (the same for every
        batch item, as the windowed decoders)."""
        return window_noise(seed, position, (1, self.flow.dim), 0)[0].expand(batch, -1)

    # -- streaming inference ------------------------------------------------------------------------
    def new_state(self, batch: int) -> DecoderState:
        st = DecoderState(vocoders=[self._new_vocoder() for _ in range(batch)])
        if self.cfg.speech.general_route:
            st.mel_stream = ISTFTStream(self.mel_vocoder, batch)
        return st

    def _new_vocoder(self):
        if self.vocoder is None:
            raise RuntimeError("no vocoder attached (SpeechDecoder.attach_vocoder)")
        return _VocoderStream(self.vocoder, self.silence_features)

    @torch.no_grad()
    def step(self, cond: torch.Tensor, state: DecoderState, *, steps: int, seed: int) -> torch.Tensor:
        """One position's token features ``[B, in]`` -> pcm ``[B, n]`` (n = 640 once the
        lookahead is filled, else 0)."""
        out, out_g = self._advance(cond, state, route=True)
        if out is None:
            return cond.new_zeros(cond.shape[0], 0)
        return self._voice(out, state, steps, seed, out_g)

    @torch.no_grad()
    def finish(self, state: DecoderState, *, steps: int, seed: int) -> torch.Tensor:
        """End of stream: the last ``lookahead`` positions, read with silent token features
        (zeros) standing in for the positions that never come."""
        b = len(state.vocoders)
        silent = self.feature_mean.new_zeros(b, self.regressor.inp[0].in_features)
        pcm = []
        for _ in range(self.regressor.lookahead):
            out, out_g = self._advance(silent, state, route=False)  # the router keeps its last decision
            if out is not None:
                pcm.append(self._voice(out, state, steps, seed, out_g))
        return torch.cat(pcm, -1) if pcm else torch.zeros(b, 0)

    def _advance(self, cond: torch.Tensor, state: DecoderState, route: bool):
        """Step the paths' GRUs (and, with ``route``, the router's) by one position ``[B, in]``:
        ``(out, out_g)``, each None until the lookahead is filled; ``out_g`` None without a general
        route.  With one, both paths give only their context: :meth:`_voice` reads the rows of the
        routes it voices."""
        g = self.cfg.speech.general_route
        out, state.regression = self.regressor.step(cond, state.regression, read=not g)
        out_g = None
        if g:
            out_g, state.general = self.general.step(cond, state.general, read=False)
            if route:
                state.route_logit, state.router.h = self.router.step(cond, state.router.h)
        return out, out_g

    def _voice(self, out, state: DecoderState, steps: int, seed: int, out_g=None) -> torch.Tensor:
        if out_g is None:
            pcm = self._speech_pcm(out, state, steps, seed)
            state.position += 1
            return pcm
        n = self.regressor.unit_frames * stft_frames.HOP
        # The router's latest logit has seen ``lookahead`` positions past this one.
        target = decide(torch.sigmoid(state.route_logit), state.router, self._route)
        w = fade_weights(state.router, target, n, self.cfg.speech.route_fade_units * n)  # [B, n]
        voiced_s = voiced_g = None  # each route's pcm [B, n], where it is voiced
        if self._route != "speech" and bool((w > 0).any()):
            if state.general_idle:  # back after a pause: a fresh stream, as at a stream start
                state.mel_stream, state.mel_pending = ISTFTStream(self.mel_vocoder, w.shape[0]), None
            voiced_g = self._general_pcm(self.general.read(out_g[0])[0], state)
        state.general_idle = voiced_g is None
        if self._route != "general" and bool((w < 1).any()):
            if state.speech_idle:
                state.vocoders = [self._new_vocoder() for _ in state.vocoders]
            voiced_s = self._speech_pcm(self.regressor.read(out[0]), state, steps, seed)
        state.speech_idle = voiced_s is None
        state.position += 1
        if voiced_g is None:
            return voiced_s
        return voiced_g if voiced_s is None else voiced_s + w * (voiced_g - voiced_s)

    def _speech_pcm(self, out, state: DecoderState, steps: int, seed: int) -> torch.Tensor:
        """The speech route's ``[B, 640]`` of one position (FARGAN, one stream per item)."""
        noise = self.flow_noise(seed, state.position, out[0].shape[0]) if steps > 0 else None
        feats = self.position_features(out, steps, noise)  # [B, F, 20]
        return torch.stack([v.synthesize(feats[i]) for i, v in enumerate(state.vocoders)])

    def _general_pcm(self, mel: torch.Tensor, state: DecoderState) -> torch.Tensor:
        """The general route's ``[B, 640]`` of one position from its mel rows ``[B, F, 64]``."""
        n = mel.shape[1] * stft_frames.HOP
        if state.mel_pending is None:
            # A stream's first MEL_SHIFT frames (before position 0's first row) repeat that row:
            # sound that starts with the stream starts at once, and the vocoder sees no
            # out-of-range input (silence's log-mel floor) in its receptive field.  Of the
            # samples they finalise, the first 240 (N_FFT / 2 - OFFSET) lie before sample 0.
            mel = torch.cat([mel[:, :1].expand(-1, MEL_SHIFT, -1), mel], 1)
            state.mel_pending = mel.new_zeros(mel.shape[0], 0)
            early = stft_frames.N_FFT // 2 - stft_frames.OFFSET
            pcm = state.mel_stream.push(mel)[:, early:]
        else:
            pcm = torch.cat([state.mel_pending, state.mel_stream.push(mel)], 1)
        state.mel_pending = pcm[:, n:]
        return pcm[:, :n]


class _VocoderStream:
    """One FARGAN stream: the C++ kernel when the extension is built, else the torch twin.
    Primed with silence features, so the first frame of the stream is voiced at once."""

    def __init__(self, fargan, silence: torch.Tensor) -> None:
        prime = silence.float().expand(PRIME_FRAMES, NB_FEATURES).contiguous()
        try:
            self._kernel = fargan.kernel()
            self._kernel.prime(prime)
            self._twin = None
        except RuntimeError:  # no C++ extension: the (slower) twin, same arithmetic up to sums
            self._kernel = None
            self._twin = fargan
            self._state = fargan.prime(prime[None])

    def synthesize(self, feats: torch.Tensor) -> torch.Tensor:
        """``[T, 20]`` -> ``[T * 160]`` float32."""
        if self._kernel is not None:
            return self._kernel.synthesize(feats.float().contiguous())
        pcm, self._state = self._twin(feats.float()[None], self._state)
        return pcm[0]
