"""The energy-time cost that the optimizer minimises."""


def energy_time_cost(energy: float, time: float, eta_knob: float, max_power: float) -> float:
    """Cost of a training run: ``eta*energy + (1-eta)*max_power*time``.

    The operand order matches Zeus's so that costs agree to the last bit.
    """
    return eta_knob * energy + (1 - eta_knob) * max_power * time
