"""Draw the normalized surrogate family: every surrogate's derivative on one axis (docs/surrogates.svg, .png).

The derivatives are the registry's own (``SURROGATES[name].normalized(width)``, through autograd), at
``model.surrogate_width``'s default unless ``--width`` says otherwise. The SVG is written by hand (the
project needs no plotting library for it); the PNG is a headless Chromium's rendering of it, made where
``chromium`` (or ``--browser``) runs.

    python docs/surrogates.py [--width 1.0] [--out docs/surrogates.svg] [--browser chromium]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from objectives import SURROGATE_SPECS, SURROGATES, ModelConfig

W, H = 760, 430
LEFT, RIGHT, TOP, BOTTOM = 60, 210, 20, 50
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
          "#bcbd22")


def derivative(name: str, width: float, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    torch.manual_seed(0)
    SURROGATES[name].normalized(width)(x).sum().backward()
    return x.grad


def svg(width: float, span: float) -> str:
    x = torch.linspace(-span, span, 1201, dtype=torch.float64)
    sx = (W - LEFT - RIGHT) / (2 * span)
    sy = (H - TOP - BOTTOM) / 1.1

    def px(u: float) -> float:
        return LEFT + (u + span) * sx

    def py(v: float) -> float:
        return H - BOTTOM - v * sy

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           'font-family="sans-serif" font-size="12">', f'<rect width="{W}" height="{H}" fill="white"/>']
    # axes, ticks, the threshold and the width
    out.append(f'<line x1="{LEFT}" y1="{py(0)}" x2="{W - RIGHT}" y2="{py(0)}" stroke="black"/>')
    out.append(f'<line x1="{LEFT}" y1="{py(0)}" x2="{LEFT}" y2="{py(1.1)}" stroke="black"/>')
    for v in (0, 0.5, 1.0):
        out.append(f'<text x="{LEFT - 8}" y="{py(v) + 4}" text-anchor="end">{v:g}</text>')
    step = 0.5 if span <= 2 else 1.0
    u = -span
    while u <= span + 1e-9:
        out.append(f'<text x="{px(u)}" y="{H - BOTTOM + 16}" text-anchor="middle">{u:g}</text>')
        u += step
    for edge in (-width, width):
        out.append(f'<line x1="{px(edge)}" y1="{py(0)}" x2="{px(edge)}" y2="{py(1.1)}" stroke="#bbb" '
                   'stroke-dasharray="4 3"/>')
    out.append(f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 12}" text-anchor="middle">U - U_thr '
               f'(each has the area of a box of height 1 from -{width:g} to {width:g}, dashed: the width)</text>')
    out.append(f'<text x="16" y="{py(0.55)}" transform="rotate(-90 16 {py(0.55)})" text-anchor="middle">'
               'dS/dU</text>')
    names = [n for n in SURROGATES if SURROGATE_SPECS[n].width is not None]
    for i, name in enumerate(names):
        grad = derivative(name, width, x)
        points = " ".join(f"{px(float(a)):.1f},{py(float(b)):.1f}" for a, b in zip(x, grad))
        color = COLORS[i % len(COLORS)]
        # every other curve dashed: some coincide where they overlap (sparse_fast_sigmoid is the fast sigmoid
        # above -B; escape noise's derivative is the sigmoid's)
        dash = ' stroke-dasharray="7 4"' if i % 2 else ""
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.8"{dash} points="{points}"/>')
        y = TOP + 14 + 20 * i
        out.append(f'<line x1="{W - RIGHT + 14}" y1="{y - 4}" x2="{W - RIGHT + 38}" y2="{y - 4}" stroke="{color}" '
                   f'stroke-width="2"{dash}/>')
        out.append(f'<text x="{W - RIGHT + 44}" y="{y}">{name}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=float, default=ModelConfig().surrogate_width)
    parser.add_argument("--span", type=float, default=2.0, help="the x axis runs from -span to span")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("surrogates.svg"))
    parser.add_argument("--browser", default="chromium", help="renders the PNG beside the SVG (skipped if absent)")
    args = parser.parse_args()
    args.out.write_text(svg(args.width, args.span))
    print(f"wrote {args.out}", file=sys.stderr)
    browser = shutil.which(args.browser)
    if browser is None:
        print(f"no {args.browser}: no PNG", file=sys.stderr)
        return 0
    png = args.out.with_suffix(".png")
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={png.resolve()}", f"--window-size={W},{H}", args.out.resolve().as_uri()],
                   check=True, capture_output=True, timeout=120)
    print(f"wrote {png}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
