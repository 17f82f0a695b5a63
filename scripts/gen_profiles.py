"""Generate a synthetic BOSS profile file (for benchmarks and the demo).

Usage: gen_profiles.py OUT.csv N [--seed S]. Subscribers get MSISDNs 86138xxxxxxxx and IMSIs
46000xxxxxxxxxx in order, with attributes drawn from small realistic value sets.
"""

from __future__ import annotations

import argparse
import random

BRANDS = ("gotone", "mzone", "easyown")
PLANS = tuple(f"P{i:02d}" for i in range(40))
ARPU = ("a0", "a1", "a2", "a3", "a4", "a5")
AGE = ("18-24", "25-34", "35-44", "45-54", "55+", "")
REGIONS = ("beijing", "tianjin", "hebei", "shanxi", "guangdong", "shanghai")
PRODUCTS = ("12593", "mms10", "gprs20", "sms50", "music", "news", "fetion", "caller_id")
TERMINALS = tuple(f"model{i}" for i in range(300))
CAPS = ("mms|wap", "wap", "", "mms")
TAGS = ("", "", "", "vip", "traveller", "student", "traveller|vip")


def generate(path: str, n: int, *, seed: int = 1, lacs: int = 50, cells_per_lac: int = 200) -> None:
    rng = random.Random(seed)
    product_sets = ["|".join(p for p in PRODUCTS if rng.random() < 0.3) for _ in range(64)]
    # MSISDNs in file order (BOSS exports sort by number), IMSIs in no particular order.
    stride = 7_368_787  # coprime with any n not a multiple of its factors: a cheap permutation
    while _gcd(stride, n) != 1:
        stride += 2
    with open(path, "w", encoding="utf-8") as out:
        out.write(
            "msisdn,imsi,brand,plan,arpu_band,age_band,region,county,home_cell,products,terminal,capabilities,tags\n"
        )
        choice = rng.choice
        rand = rng.randrange
        lines = []
        for i in range(n):
            lines.append(
                f"{8613800000000 + i},{460000000000000 + (i * stride) % n},{choice(BRANDS)},{choice(PLANS)},"
                f"{choice(ARPU)},{choice(AGE)},{choice(REGIONS)},c{rand(100)},"
                f"{4100 + rand(lacs)}-{1 + rand(cells_per_lac)},{product_sets[rand(64)]},"
                f"{choice(TERMINALS)},{choice(CAPS)},{choice(TAGS)}\n"
            )
            if len(lines) >= 100_000:
                out.writelines(lines)
                lines.clear()
        out.writelines(lines)


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out")
    parser.add_argument("n", type=int)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    generate(args.out, args.n, seed=args.seed)


if __name__ == "__main__":
    main()
