"""The energy-time cost that the optimizer minimises."""


def energy_time_cost(energy: float, time: float, eta_knob: float, max_power: float) -> float:
    """Cost of a training run: ``eta*energy + (1-eta)*max_power*time``.

    The operand order matches Zeus's so that costs agree to the last bit.
    """
    return eta_knob * energy + (1 - eta_knob) * max_power * time


def epoch_cost_at_power(average_power: float, time_per_epoch: float, eta_knob: float, max_power: float) -> float:
    """The same cost for an epoch known by its average power: ``(eta*power + (1-eta)*max_power)*time``.

    Zeus's simulator compares power limits in this grouping; keeping it keeps its choice on ties.
    Works on numpy arrays and pandas Series as well as floats.
    """
    return (eta_knob * average_power + (1 - eta_knob) * max_power) * time_per_epoch
