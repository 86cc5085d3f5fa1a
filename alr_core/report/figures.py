"""New matplotlib figures for the offline PNGs, on the non-interactive backend (no display is
needed, and importing pyplot first would pick an interactive one where a display exists)."""


def new_axes(size: tuple[float, float] = (6.4, 4.0)):
    """(figure, axis) of ``size`` inches (width, height)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size)
