"""``SnnLIF``: a Lava LIF process with per-neuron parameters and snnTorch's reset rules.

Float model (snnTorch ``Leaky``, reset_delay=True; ``snntorch/_neurons/leaky.py``), s_prev is the
neuron's spike of the previous step::

    zero:      v = beta * (1 - s_prev) * v + a_in
    subtract:  v = (beta * v + a_in) - vth * s_prev
    s = v > vth

Fixed-point model: the integer current/voltage update of Lava's bit-accurate ``PyLifModelBitAcc``
(``lava/proc/lif/models.py``) with per-neuron ``dv``/``vth``; the subtract reset takes
``vth << 6`` off the voltage on the step after a spike, before clipping to 24 bits (zero reset:
``v = 0`` right after the spike, as in stock Lava).
"""
from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


class SnnLIF(AbstractProcess):
    """LIF with vector ``du``/``dv``/``vth`` and ``subtract`` (True) or zero reset."""

    def __init__(self, *, shape: tuple[int], du: np.ndarray, dv: np.ndarray, vth: np.ndarray,
                 subtract: bool, beta: np.ndarray | None = None, name: str | None = None) -> None:
        super().__init__(shape=shape, name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.u = Var(shape=shape, init=0)
        self.v = Var(shape=shape, init=0)
        self.s_prev = Var(shape=shape, init=0)
        self.du = Var(shape=shape, init=du)
        self.dv = Var(shape=shape, init=dv)
        self.vth = Var(shape=shape, init=vth)
        # The float model decays by ``beta`` itself (1 - (1 - beta) need not equal beta in floats).
        self.beta = Var(shape=shape, init=1 - np.asarray(dv, dtype=float) if beta is None else beta)
        self.subtract = Var(shape=(1,), init=int(subtract))


@implements(proc=SnnLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PySnnLifFloat(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    u: np.ndarray = LavaPyType(np.ndarray, float)
    v: np.ndarray = LavaPyType(np.ndarray, float)
    s_prev: np.ndarray = LavaPyType(np.ndarray, float)
    du: np.ndarray = LavaPyType(np.ndarray, float)
    dv: np.ndarray = LavaPyType(np.ndarray, float)
    vth: np.ndarray = LavaPyType(np.ndarray, float)
    beta: np.ndarray = LavaPyType(np.ndarray, float)
    subtract: np.ndarray = LavaPyType(np.ndarray, int)

    def run_spk(self) -> None:
        self.u[:] = self.u * (1 - self.du) + self.a_in.recv()
        fired = self.s_prev > 0
        beta = self.beta
        if self.subtract[0]:
            self.v[:] = (beta * self.v + self.u) - np.where(fired, self.vth, 0.0)
        else:
            self.v[:] = beta * np.where(fired, 0.0, self.v) + self.u
        s = self.v > self.vth
        self.s_prev[:] = s
        self.s_out.send(s.astype(float))


@implements(proc=SnnLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySnnLifFixed(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    u: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    v: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    s_prev: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=1)
    du: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=12)
    dv: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=12)
    vth: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=17)
    beta: np.ndarray = LavaPyType(np.ndarray, float)
    subtract: np.ndarray = LavaPyType(np.ndarray, int)

    def run_spk(self) -> None:
        big = 2 ** 23
        a_in = self.a_in.recv().astype(np.int32)
        du = np.int64(4096) - (self.du.astype(np.int64) + 1)
        dec = np.int64(self.u) * du
        u = np.int32(np.sign(dec) * np.right_shift(np.abs(dec), 12))
        u += np.left_shift(a_in, 6)
        u = np.where(u > big, u - 2 * big, u)
        u = np.where(u <= -big, u + 2 * big, u)
        self.u[:] = u
        dec = np.int64(self.v) * (np.int64(4096) - self.dv.astype(np.int64))
        v = np.int32(np.sign(dec) * np.right_shift(np.abs(dec), 12)) + self.u
        vth = np.left_shift(self.vth.astype(np.int32), 6)
        if self.subtract[0]:
            v = v - np.where(self.s_prev > 0, vth, 0).astype(np.int32)
        v = np.clip(v, -big + 1, big - 1)
        s = v > vth
        if not self.subtract[0]:
            v = np.where(s, 0, v)
        self.v[:] = v
        self.s_prev[:] = s
        self.s_out.send(s.astype(np.int32))
