"""What every neuron layer shares: an explicit state tuple, one step, a run over time
(one autograd node per window, with a hand-written backward)."""

from __future__ import annotations

from typing import ClassVar

import torch
from snntorch._neurons.neurons import SpikingNeuron
from torch import nn

from .._specs import GAINS, RESET_MECHANISMS, NeuronSpec

State = tuple[torch.Tensor, ...]


class Neuron(nn.Module):
    """A layer of spiking neurons with snntorch's equations and no hidden globals.

    Subclasses define ``integrate(x, state, reset) -> state`` for one time step, with
    the state a tuple in snntorch's argument order (membrane last), so the same
    tuple can be passed to the snntorch class for comparison. ``reset`` is the
    detached spike of the *previous* membrane, as snntorch computes it
    (``mem_reset``), so a spike resets the membrane at the next step. :meth:`step`
    is one step through autograd; :meth:`run` goes over a window of steps as one
    autograd node, whose backward is the subclass's :meth:`backward_window`.
    The neuron's own parameters (beta, alpha, threshold) are buffers: no gradient
    reaches them, in either path.

    Under ``gain="matched"`` the input current is first multiplied by ``input_scale``,
    the inverse of the neuron's DC gain (:meth:`drive`; each neuron's file derives its
    gain), so a constant input ``I`` settles the membrane at ``I`` for any alpha and
    beta; ``integrate`` and the snntorch class then see that driven current. Under
    ``gain="raw"`` the current goes in as it comes: snntorch's arithmetic, exactly.
    """

    #: the neuron's name, config fields (besides threshold), default reset and rule
    spec: ClassVar[NeuronSpec]
    threshold: torch.Tensor
    #: state variables, in snntorch's argument order; the membrane is last
    state_names: ClassVar[tuple[str, ...]] = ("mem",)
    #: whether :meth:`backward_window` emits, for each step, the tensor ``local(t)`` gave it
    #: (updated in place): the input gradient is the membrane gradient
    emits_local: ClassVar[bool] = False

    def __init__(
        self,
        spike_fn,
        threshold: float = 1.0,
        reset_mechanism: str | None = None,
        gain: str = "matched",
        alpha: float = 0.0,
        beta: float = 0.0,
    ):
        super().__init__()
        reset_mechanism = reset_mechanism or self.spec.default_reset
        if reset_mechanism not in RESET_MECHANISMS:
            raise ValueError(
                f"reset_mechanism={reset_mechanism!r} is not one of {', '.join(RESET_MECHANISMS)}"
            )
        if gain not in GAINS:
            raise ValueError(f"gain={gain!r} is not one of {', '.join(GAINS)}")
        problem = self.spec.check(alpha=alpha, beta=beta, gain=gain)
        if problem:
            raise ValueError(problem[1])
        self.gain = gain
        #: what the input current is multiplied by: 1 / DC gain when matched, 1 when raw
        self.input_scale: float | torch.Tensor = self.spec.input_scale(alpha, beta, gain)
        self.spike_fn = spike_fn
        # what the window's backward multiplies by: found once here, not at every backward pass
        self.spike_derivative = surrogate_derivative(spike_fn)
        # a surrogate whose forward pass draws the spike (escape noise): the window's spikes and resets draw too
        self._sample = getattr(spike_fn, "sample", None)
        self.reset_mechanism = reset_mechanism
        self.register_buffer("threshold", torch.as_tensor(float(threshold)))
        self._unit_threshold = float(threshold) == 1.0

    def init_state(self, like: torch.Tensor) -> State:
        """All-zero state shaped like one time step of input (snntorch's start)."""
        return tuple(torch.zeros_like(like) for _ in self.state_names)

    def drive(self, x: torch.Tensor) -> torch.Tensor:
        """The input current the neuron integrates: ``x`` times ``input_scale`` (``x`` itself under the raw gain).
        A fused trial array's layer holds one scale per member, a tensor over the feature axis."""
        scale = self.input_scale
        return x if isinstance(scale, float) and scale == 1.0 else x * scale

    def previous_spike(self, mem: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The reset signal: whether the previous membrane was above threshold (no gradient),
        written into ``out`` when given. snntorch computes ``(U - U_thr > 0)``: for finite
        floats the same as ``U > U_thr``, here written straight into a float tensor (one
        kernel instead of three). Under a surrogate with a stochastic forward pass it is a
        draw of whether that membrane spiked, with the surrogate's probability: within a
        window the drawn spikes are the next steps' resets; where a window starts (every
        step of a one-step window, and :meth:`step`) the state carries no spike and the
        reset is drawn again from the carried membrane, with the same probability."""
        out = torch.empty_like(mem) if out is None else out
        if self._sample is not None:
            return self._sample(mem - self.threshold, out=out)
        return torch.gt(mem, self.threshold, out=out)

    def scaled_reset(self, reset: torch.Tensor) -> torch.Tensor:
        """``reset * U_thr``, what the subtractive reset takes off. At the default threshold of
        1 that product is ``reset`` itself: not computed (the same values, one kernel less per step)."""
        return reset if self._unit_threshold else reset * self.threshold

    def fire(self, mem: torch.Tensor) -> torch.Tensor:
        """Spikes of the new membrane, through the surrogate gradient."""
        return self.spike_fn(mem - self.threshold)

    def integrate(self, x: torch.Tensor, state: State, reset: torch.Tensor) -> State:
        """The new state after input ``x``, given ``reset``: the previous step's spike (0 or 1, no gradient)."""
        raise NotImplementedError

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One time step of driven current ``x`` (:meth:`drive`) with autograd through every operation
        (the reference the fused run is checked against)."""
        state = self.integrate(x, state, self.previous_spike(state[-1]))
        return self.fire(state[-1]), state

    def backward_window(self, steps: int, local, reset, later: tuple, emit) -> tuple[torch.Tensor | None, ...]:
        """The backward pass of :meth:`integrate` over a window of ``steps`` steps, by hand,
        from the last step to the first.

        ``local(t)`` is a new tensor (the method may overwrite it): the gradient on step
        ``t``'s membrane from that step's own outputs (the spike through the surrogate,
        the recorded membrane). ``reset(t)`` is step ``t``'s reset signal. ``later``
        holds the gradients on the last step's other state variables (``state[:-1]``,
        ``None`` where there is none). ``emit(t, grad)`` takes the gradient on step
        ``t``'s input. Returns the gradients on the initial state (``None`` where zero).
        """
        raise NotImplementedError

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """One time step: ``x`` is the input current, ``state`` the previous state (zeros if ``None``)."""
        if state is None:
            state = self.init_state(x)
        return self.step(self.drive(x), state)

    def run(
        self, current: torch.Tensor, state: State | None, num_steps: int | None = None, record_mem: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None, State]:
        """Run over time. ``current`` is ``[T, ...]``, or one ``[...]`` tensor applied for
        ``num_steps`` steps (direct encoding: the same current at every step).

        Returns the spikes ``[T, ...]``, the membrane ``[T, ...]`` when ``record_mem``
        (else ``None``) and the final state, the same values as :meth:`forward` repeated.
        A window of several steps is one autograd node (:class:`_Window`) after the input
        is driven (:meth:`drive`, once for the window); a single step is :meth:`step` itself.
        """
        current = self.drive(current)
        steps = num_steps if num_steps is not None else current.shape[0]
        if state is None:
            state = self.init_state(current if num_steps is not None else current[0])
        if torch.is_grad_enabled() and (current.requires_grad or any(s.requires_grad for s in state)):
            if steps == 1:
                # one step (RTRL): no loop over time to save, and autograd's own bookkeeping is
                # cheaper than a Python-level node
                # squeeze, not current[0]: its backward is a view, not a zero-filled copy
                spk, state = self.step(current if num_steps is not None else current.squeeze(0), state)
                return spk.unsqueeze(0), (state[-1].unsqueeze(0) if record_mem else None), state
            spikes, mems, *others = _Window.apply(self, num_steps, current, *state)
            return spikes, (mems if record_mem else None), (*others, mems[-1])
        # nothing to differentiate (evaluation): the same loop, keeping the membrane only when asked
        spikes, mems, state, _ = _integrate_window(self, current, num_steps, state, keep_mems=record_mem)
        return spikes, mems, state

    def to_snntorch(self, init_hidden: bool = False, output: bool = False, track: bool = False) -> nn.Module:
        """The equivalent ``snntorch`` neuron, with the same parameters and surrogate; it takes the
        driven current (:meth:`drive`), which under the raw gain is the input itself.

        snntorch appends every neuron it builds to a class-level list
        (``SpikingNeuron.instances``) that keeps them alive for the life of the
        process; unless ``track`` (which ``snntorch.backprop`` needs), the new
        neuron is taken out of that list again.
        """
        module = self._snntorch(init_hidden=init_hidden, output=output)
        if not track:
            untrack(module)
        return module

    def _snntorch(self, init_hidden: bool, output: bool) -> nn.Module:
        raise NotImplementedError


def untrack(module: nn.Module) -> None:
    """Remove ``module``'s snntorch neurons from snntorch's global instance list."""
    ids = {id(m) for m in module.modules()}
    SpikingNeuron.instances[:] = [n for n in SpikingNeuron.instances if id(n) not in ids]


def steps_like(x: torch.Tensor, steps: int) -> torch.Tensor:
    """An empty ``[steps, *x.shape]`` tensor whose every step has ``x``'s memory layout
    (channels-last stays channels-last, so the next convolution needs no copy)."""
    if x.is_contiguous() or (x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)):
        return torch.empty_strided((steps, *x.shape), (x.numel(), *x.stride()), dtype=x.dtype, device=x.device)
    return x.new_empty((steps, *x.shape))


def _integrate_window(neuron: Neuron, current, num_steps, state, keep_mems: bool):
    """Forward over a window without autograd: spikes ``[T, ...]``, membranes ``[T, ...]``
    (``None`` unless ``keep_mems``), the final state and the first step's reset."""
    steps = num_steps if num_steps is not None else current.shape[0]
    inputs = [current] * steps if num_steps is not None else current.unbind(0)
    spikes = steps_like(inputs[0], steps)
    # the membranes: copied into place step by step on a CPU (cache), stacked once at the end elsewhere
    stacked = keep_mems and whole_window(current)
    mems = steps_like(inputs[0], steps) if keep_mems and not stacked else None
    kept = []
    with torch.no_grad():
        reset0 = reset = neuron.previous_spike(state[-1])
        for t, x in enumerate(inputs):
            state = neuron.integrate(x, state, reset)
            if mems is not None:
                mems[t].copy_(state[-1])
            elif stacked:
                kept.append(state[-1])
            # the spike, and the next step's reset
            reset = neuron.previous_spike(state[-1], out=spikes[t])
    if stacked:
        mems = torch.stack(kept)
    return spikes, mems, state, reset0


class _Window(torch.autograd.Function):
    """A neuron layer over a window of time steps as one autograd node.

    Forward runs :meth:`Neuron.integrate` step by step without recording a graph
    (the same operations as :meth:`Neuron.step`, so the same values) and keeps only
    the membranes and spikes. Backward goes back over the steps: the surrogate's
    derivative at each step (the function its ``_Spike`` backward calls), then the
    neuron's hand-written recurrence (:meth:`Neuron.backward_window`). This saves
    autograd's bookkeeping for some ten small operations per step and layer, and
    the tensors it would keep for them. Spikes are the Heaviside step of
    ``U - U_thr``, as every surrogate's forward is.
    """

    @staticmethod
    def forward(ctx, neuron: Neuron, num_steps: int | None, current: torch.Tensor, *state: torch.Tensor):
        spikes, mems, state, reset0 = _integrate_window(neuron, current, num_steps, state, keep_mems=True)
        ctx.neuron, ctx.constant = neuron, num_steps is not None
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(mems, spikes, reset0)
        # the final membrane is mems[-1]: the caller takes it from there
        return (spikes, mems, *state[:-1])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_spikes, grad_mems, *grad_others):
        mems, spikes, reset0 = ctx.saved_tensors
        neuron = ctx.neuron
        steps = len(mems)
        derivative = neuron.spike_derivative

        def local_of(t):
            """The gradient on the membrane from its own outputs, at step ``t`` or (``t=slice(None)``) at every step."""
            if grad_spikes is None:
                return grad_mems[t].clone() if grad_mems is not None else torch.zeros_like(mems[t])
            u = mems[t] - neuron.threshold
            if derivative is not None:
                grad = grad_spikes[t] * derivative(u)  # what the surrogate's backward computes
            else:
                with torch.enable_grad():
                    u.requires_grad_()
                    (grad,) = torch.autograd.grad(neuron.spike_fn(u), u, grad_spikes[t])
            return grad if grad_mems is None else grad.add_(grad_mems[t])

        whole = whole_window(mems)
        if whole:
            # every step at once: the same values in some 7 kernels instead of 7 per step
            everything = local_of(slice(None))

            def local(t):
                return everything[t]
        else:
            # step by step: each step's tensors stay in the CPU's cache
            local = local_of

        # A neuron whose input gradient is its membrane gradient (``emits_local``) updates the
        # window's locals in place into the input gradients: nothing to copy, one sum if constant.
        in_place = whole and neuron.emits_local
        per_step = None if ctx.constant or in_place else steps_like(mems[0], steps)
        grad_x: torch.Tensor | None = per_step
        summed = False

        def emit(t, grad):
            nonlocal grad_x, summed
            if in_place:
                return
            if per_step is not None:
                per_step[t].copy_(grad)
            elif grad_x is None:
                grad_x = grad  # the neuron may read it again: the sum goes out of place once
            elif not summed:
                grad_x, summed = grad_x + grad, True
            else:
                grad_x.add_(grad)

        def reset(t):
            return spikes[t - 1] if t > 0 else reset0

        needs = ctx.needs_input_grad
        grad_state = neuron.backward_window(steps, local, reset, grad_others, emit)
        if in_place:
            grad_x = everything.sum(0) if ctx.constant else everything
        grad_state = [g if need else None for g, need in zip(grad_state, needs[3:])]
        return (None, None, grad_x if needs[2] else None, *grad_state)


def whole_window(t: torch.Tensor) -> bool:
    """Whether a window's per-step work is done once over the whole window (stacking the
    membranes, the surrogate's derivative, the input gradient): on accelerators, where each
    kernel launch costs more than the arithmetic; on the CPU it goes step by step, where
    a step's tensors stay in cache."""
    return t.device.type != "cpu"


def surrogate_derivative(spike_fn):
    """The derivative a surrogate spike function's backward multiplies the gradient by
    (the registry's spike functions carry it as ``derivative``), or ``None`` for a spike
    function built otherwise (its own backward is then called step by step)."""
    return getattr(spike_fn, "derivative", None)
