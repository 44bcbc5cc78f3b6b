#!/usr/bin/env python3
"""Generates the PyBaMM SOC test profiles in this folder (LFP, a second NMC one, and four
more with other seeds, temperatures and starting points; the SOC estimator's defaults were
chosen looking at all of them).

Requirement (pinned): pybamm==26.10.1.1   (PyPI; runs offline)

    python3 -m venv /tmp/pybamm-venv
    /tmp/pybamm-venv/bin/pip install pybamm==26.10.1.1
    PYBAMM_DISABLE_TELEMETRY=true /tmp/pybamm-venv/bin/python generate_pybamm.py [NAME ...]

Each profile is a DFN + lumped thermal simulation driven by a seeded random mixed load
(discharge pulses, regenerative charge pulses, rests), then a CC-CV charge to full, sampled
every second. Columns: t_s, current_a (positive = discharge), voltage_v, temp_c, soc_true.

soc_true is the model's own coulomb count (its "Discharge capacity [A.h]") against the
capacity between the stoichiometry limits of the voltage window (the definition of SOC used by
PyBaMM's initial-SOC solver); the JSON beside each CSV records how well it agrees with the
negative-electrode stoichiometry and with a coulomb count of the current column.

LFP (Prada2013) has no hysteresis in PyBaMM's parameter set; real LFP cells do, so the LFP
profiles add PyBaMM's one-state hysteresis model (Axen 2022) to the positive electrode, with
lithiation/delithiation OCPs of the Prada2013 OCP -/+ HYSTERESIS_HALF_GAP_V. The mean branch
is the original OCP, so the OCV table at 25 degC is unchanged.
"""

import json
import os
import sys
import time

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")

import numpy as np  # noqa: E402
import pybamm  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
HYSTERESIS_HALF_GAP_V = 0.012
HYSTERESIS_DECAY_RATE = 60.0  # h moves by ~63 % of the gap over 2/60 = 3 % of stoichiometry
# The CC step that ends a charge runs until the charge voltage; this only bounds it.
CC_TO_VOLTAGE_MAX_S = 2 * 3600
# The fine OCV table in the JSON (true OCV of the profile's cell, for the tests' definition of
# the knees): this many points from 0 to 100 % SOC.
FINE_OCV_STEPS = 201

PROFILES = {
    # 90 % -> ~8 % with a mixed load (through the low knee), a 20 min rest at the bottom,
    # then back to full with a pulsed CC charge and a CV hold.
    "lfp_prada2013_dfn_25C_seed7": dict(
        parameter_set="Prada2013", cell="lfp", seed=7, ambient_c=25.0, soc0=0.90,
        h0=1.0, window=(2.0, 3.6), v_min=2.5, v_full=3.55, discharge_to=0.08,
        max_discharge_c=2.0, max_charge_c=1.0, charge_c=0.5, bottom_rest_s=1200,
        hysteresis=True,
    ),
    # 60 % at 10 degC: first a pulsed charge to full (the high knee), then a mixed discharge
    # on the plateau down to ~15 %.
    "lfp_prada2013_dfn_10C_seed11": dict(
        parameter_set="Prada2013", cell="lfp", seed=11, ambient_c=10.0, soc0=0.60,
        h0=-1.0, window=(2.0, 3.6), v_min=2.5, v_full=3.55, discharge_to=0.15,
        max_discharge_c=1.5, max_charge_c=0.8, charge_c=0.5, bottom_rest_s=0,
        hysteresis=True, charge_first=True,
    ),
    # NMC (Chen2020) at 10 degC from 80 % down to ~15 % and back up to full.
    "nmc_chen2020_dfn_10C_seed5": dict(
        parameter_set="Chen2020", cell="nmc", seed=5, ambient_c=10.0, soc0=0.80,
        h0=0.0, window=(2.5, 4.2), v_min=2.8, v_full=4.15, discharge_to=0.15,
        max_discharge_c=1.5, max_charge_c=0.7, charge_c=0.5, bottom_rest_s=600,
        hysteresis=False,
    ),
    # Four more, with other seeds, temperatures and starting points (first generated to check
    # that settings chosen on the profiles above carry over).
    "lfp_prada2013_dfn_25C_seed21": dict(
        parameter_set="Prada2013", cell="lfp", seed=21, ambient_c=25.0, soc0=0.85,
        h0=1.0, window=(2.0, 3.6), v_min=2.5, v_full=3.55, discharge_to=0.08,
        max_discharge_c=2.0, max_charge_c=1.0, charge_c=0.5, bottom_rest_s=900,
        hysteresis=True,
    ),
    "lfp_prada2013_dfn_15C_seed23": dict(
        parameter_set="Prada2013", cell="lfp", seed=23, ambient_c=15.0, soc0=0.55,
        h0=-1.0, window=(2.0, 3.6), v_min=2.5, v_full=3.55, discharge_to=0.12,
        max_discharge_c=1.5, max_charge_c=0.8, charge_c=0.5, bottom_rest_s=0,
        hysteresis=True, charge_first=True,
    ),
    "nmc_chen2020_dfn_25C_seed31": dict(
        parameter_set="Chen2020", cell="nmc", seed=31, ambient_c=25.0, soc0=0.85,
        h0=0.0, window=(2.5, 4.2), v_min=2.8, v_full=4.15, discharge_to=0.2,
        max_discharge_c=1.5, max_charge_c=0.7, charge_c=0.5, bottom_rest_s=600,
        hysteresis=False,
    ),
    "nmc_chen2020_dfn_15C_seed37": dict(
        parameter_set="Chen2020", cell="nmc", seed=37, ambient_c=15.0, soc0=0.6,
        h0=0.0, window=(2.5, 4.2), v_min=2.8, v_full=4.15, discharge_to=0.2,
        max_discharge_c=1.5, max_charge_c=0.7, charge_c=0.5, bottom_rest_s=0,
        hysteresis=False, charge_first=True,
    ),
}


THERMAL_KEYWORDS = ("current collector", "density", "specific heat", "thermal conductivity",
                    "heat transfer", "Cell cooling surface area", "Cell volume")


def add_missing_thermal_parameters(values):
    """Prada2013 has no thermal parameters: take Chen2020's layer properties, with the
    geometry of the A123 26650 cell it describes (65 mm x 26 mm)."""
    chen = pybamm.ParameterValues("Chen2020")
    extra = {key: chen[key] for key in chen.keys()
             if key not in values.keys() and any(w in key for w in THERMAL_KEYWORDS)}
    extra["Cell volume [m3]"] = 3.45e-5
    extra["Cell cooling surface area [m2]"] = 0.00637
    values.update(extra, check_already_exists=False)


def base_parameters(spec):
    values = pybamm.ParameterValues(spec["parameter_set"])
    if spec["parameter_set"] == "Prada2013":
        add_missing_thermal_parameters(values)
    v_low, v_high = spec["window"]
    values.update({
        "Lower voltage cut-off [V]": v_low,
        "Upper voltage cut-off [V]": v_high,
        "Ambient temperature [K]": 273.15 + spec["ambient_c"],
        "Initial temperature [K]": 273.15 + spec["ambient_c"],
    })
    return values


def stoichiometry_limits(values):
    x0, x100, y100, y0 = pybamm.lithium_ion.get_min_max_stoichiometries(values)
    return float(x0), float(x100), float(y100), float(y0)


def soc_capacity_ah(values, limits):
    """Capacity between the stoichiometry limits, from the negative electrode."""
    x0, x100, _, _ = limits
    param = pybamm.LithiumIonParameters()
    q_n = values.evaluate(param.n.prim.elec_loading * param.A_cc)
    return float(q_n * (x100 - x0)), float(q_n)


def ocv_table(values, limits, steps=21):
    """Cell OCV (mean branch) at 0, 5, ..., 100 % SOC, clipped to the window."""
    x0, x100, y100, y0 = limits
    un = values["Negative electrode OCP [V]"]
    up = values["Positive electrode OCP [V]"]
    table = []
    for i in range(steps):
        soc = i / (steps - 1)
        x = x0 + soc * (x100 - x0)
        y = y0 + soc * (y100 - y0)
        v = values.evaluate(up(pybamm.Scalar(y))) - values.evaluate(un(pybamm.Scalar(x)))
        table.append([soc, round(float(v), 4)])
    table[0][1] = values["Lower voltage cut-off [V]"]
    table[-1][1] = values["Upper voltage cut-off [V]"]
    return table


def set_initial_state(values, spec, limits):
    x0, x100, y100, y0 = limits
    soc0 = spec["soc0"]
    x = x0 + soc0 * (x100 - x0)
    y = y0 + soc0 * (y100 - y0)
    values.update({
        "Initial concentration in negative electrode [mol.m-3]":
            x * values["Maximum concentration in negative electrode [mol.m-3]"],
        "Initial concentration in positive electrode [mol.m-3]":
            y * values["Maximum concentration in positive electrode [mol.m-3]"],
    })


def add_hysteresis(values, h0):
    u = values["Positive electrode OCP [V]"]
    values.update({
        "Positive electrode lithiation OCP [V]": lambda sto: u(sto) - HYSTERESIS_HALF_GAP_V,
        "Positive electrode delithiation OCP [V]": lambda sto: u(sto) + HYSTERESIS_HALF_GAP_V,
        "Positive particle lithiation hysteresis decay rate": HYSTERESIS_DECAY_RATE,
        "Positive particle delithiation hysteresis decay rate": HYSTERESIS_DECAY_RATE,
        "Positive particle hysteresis switching factor": 1.0,
        "Initial hysteresis state in positive electrode": h0,
    }, check_already_exists=False)


def mixed_load(spec, capacity_ah, rng):
    """A list of (kind, value, seconds): 'I' current in A (positive = discharge), 'rest'."""
    c = capacity_ah
    steps = []
    soc = spec["soc0"]

    def add(current, seconds):
        nonlocal soc
        steps.append(("I", float(current), int(seconds)))
        soc -= current * seconds / 3600.0 / c

    def discharge_until(target):
        while soc > target:
            draw = rng.random()
            if draw < 0.55:
                # Gentler near the bottom, so the cell reaches the low knee before cut-off.
                top = spec["max_discharge_c"] if soc > 0.3 else 0.6
                current = rng.uniform(0.2, top) * c
                seconds = rng.integers(10, 180)
                seconds = min(seconds, max(5, int((soc - target) * 3600 * c / current) + 1))
                add(current, seconds)
            elif draw < 0.75:
                add(0.0, rng.integers(10, 240))
            elif draw < 0.90:
                add(-rng.uniform(0.1, spec["max_charge_c"]) * c, rng.integers(5, 40))
            else:
                add(rng.uniform(0.05, 0.3) * c, rng.integers(30, 300))

    def pulsed_charge():
        # Pulsed CC charge until the OCV knee is close, then a plain CC charge at the charge
        # rate up to the charge voltage, as a charger does (its step ends at v_full, see
        # experiment_steps); the CV step in run() finishes it. (The pulses used to hand over
        # straight to the CV step at ~93 %, below LFP's knee, which started the CV step with
        # a 5-7C current spike: no charger does that.)
        while soc < 0.93:
            draw = rng.random()
            if draw < 0.75:
                add(-spec["charge_c"] * c * rng.uniform(0.7, 1.3), rng.integers(60, 400))
            elif draw < 0.9:
                add(0.0, rng.integers(10, 120))
            else:
                add(rng.uniform(0.2, 1.0) * c, rng.integers(5, 30))
        steps.append(("I", -spec["charge_c"] * c, CC_TO_VOLTAGE_MAX_S))

    if spec.get("charge_first"):
        pulsed_charge()
        steps.append(("cv", spec["v_full"], 0))
        steps.append(("I", 0.0, 600))
        soc = 0.99
        discharge_until(spec["discharge_to"])
        steps.append(("I", 0.0, 600))
    else:
        discharge_until(spec["discharge_to"])
        if spec["bottom_rest_s"]:
            add(0.0, spec["bottom_rest_s"])
        pulsed_charge()
        steps.append(("cv", spec["v_full"], 0))
        steps.append(("I", 0.0, 600))
    return steps


def experiment_steps(load, spec, capacity_ah):
    v_min, v_full = spec["v_min"], spec["v_full"]
    tail_a = capacity_ah / 20.0
    out = []
    for kind, value, seconds in load:
        if kind == "cv":
            out.append(pybamm.step.voltage(
                value, duration=3 * 3600, period=1, termination=f"{tail_a * 1000:.0f} mA"))
        elif value > 0:
            out.append(pybamm.step.current(
                value, duration=seconds, period=1, termination=f"{v_min} V"))
        elif value < 0:
            # Hand over to the CV step when the charge voltage is reached.
            out.append(pybamm.step.current(
                value, duration=seconds, period=1, termination=f"{v_full} V"))
        else:
            out.append(pybamm.step.rest(duration=seconds, period=1))
    return out


def resample(solution, discharge_capacity_name):
    """Samples every whole second: each step's own values on [start, end)."""
    rows = []
    subs = solution.sub_solutions
    end_time = float(subs[-1].t[-1])
    names = ["Current [A]", "Voltage [V]", "X-averaged cell temperature [K]",
             discharge_capacity_name, "Average negative particle stoichiometry"]
    for index, sub in enumerate(subs):
        t = sub.t
        start, stop = float(t[0]), float(t[-1])
        last = index == len(subs) - 1
        grid = np.arange(np.ceil(start - 1e-9), np.floor(stop + 1e-9) + 1.0)
        grid = grid[(grid < stop - 1e-9) | last]
        if grid.size == 0:
            continue
        columns = [np.interp(grid, t, sub[name].entries) for name in names]
        rows.extend(zip(grid, *columns))
    rows.sort(key=lambda r: r[0])
    dedup = {}
    for row in rows:
        dedup[int(round(row[0]))] = row
    return [dedup[k] for k in sorted(dedup)], end_time


def run(name):
    spec = PROFILES[name]
    rng = np.random.default_rng(spec["seed"])
    values = base_parameters(spec)
    limits = stoichiometry_limits(values)
    capacity_ah, q_n = soc_capacity_ah(values, limits)
    table = ocv_table(values, limits)
    fine_table = ocv_table(values, limits, steps=FINE_OCV_STEPS)
    set_initial_state(values, spec, limits)
    options = {"thermal": "lumped"}
    if spec["hysteresis"]:
        add_hysteresis(values, spec["h0"])
        options["open-circuit potential"] = ("single", "one-state hysteresis")
    model = pybamm.lithium_ion.DFN(options)
    load = mixed_load(spec, capacity_ah, rng)
    experiment = pybamm.Experiment(experiment_steps(load, spec, capacity_ah))
    sim = pybamm.Simulation(model, parameter_values=values, experiment=experiment)
    started = time.time()
    solution = sim.solve()
    wall = time.time() - started
    rows, end_time = resample(solution, "Discharge capacity [A.h]")
    x0, x100, y100, y0 = limits
    t = np.array([r[0] for r in rows])
    current = np.array([r[1] for r in rows])
    voltage = np.array([r[2] for r in rows])
    temp_c = np.array([r[3] for r in rows]) - 273.15
    soc_true = spec["soc0"] - np.array([r[4] for r in rows]) / capacity_ah
    soc_sto = (np.array([r[5] for r in rows]) - x0) / (x100 - x0)
    # Rectangle-rule count of the current column as written (current of [t, t + 1)).
    counted = spec["soc0"] - np.concatenate(([0.0], np.cumsum(current[:-1] * np.diff(t)))) \
        / 3600.0 / capacity_ah
    csv_path = os.path.join(HERE, name + ".csv")
    with open(csv_path, "w") as f:
        f.write("t_s,current_a,voltage_v,temp_c,soc_true\n")
        for row in zip(t, current, voltage, temp_c, soc_true):
            f.write(f"{row[0]:.0f},{row[1]:.4f},{row[2]:.5f},{row[3]:.3f},{row[4]:.6f}\n")
    meta = {
        "file": name + ".csv",
        "cell": spec["cell"],
        "parameter_set": spec["parameter_set"],
        "model": "DFN + lumped thermal"
        + (" + one-state hysteresis (positive electrode)" if spec["hysteresis"] else ""),
        "pybamm_version": pybamm.__version__,
        "seed": spec["seed"],
        "ambient_c": spec["ambient_c"],
        "soc0": spec["soc0"],
        "duration_s": float(t[-1]),
        "completed": bool(abs(end_time - t[-1]) < 1.5),
        "capacity_ah_soc_definition": capacity_ah,
        "nominal_capacity_ah": float(values["Nominal cell capacity [A.h]"]),
        "stoichiometry_limits": {"x0": x0, "x100": x100, "y0": y0, "y100": y100, "Q_n": q_n},
        "voltage_window_soc_definition_v": list(spec["window"]),
        "voltage_limits_enforced_v": [spec["v_min"], spec["v_full"]],
        "cv_tail_a": capacity_ah / 20.0,
        "current_limits_c": {"discharge": spec["max_discharge_c"],
                             "charge": spec["max_charge_c"]},
        "hysteresis_half_gap_v": HYSTERESIS_HALF_GAP_V if spec["hysteresis"] else 0.0,
        "hysteresis_decay_rate": HYSTERESIS_DECAY_RATE if spec["hysteresis"] else None,
        "initial_hysteresis_state": spec["h0"] if spec["hysteresis"] else None,
        "sign_convention": "current_a > 0 = discharge",
        "soc_range": [float(soc_true.min()), float(soc_true.max())],
        "voltage_range": [float(voltage.min()), float(voltage.max())],
        "temp_range_c": [float(temp_c.min()), float(temp_c.max())],
        "soc_vs_stoichiometry_max_abs_diff": float(np.max(np.abs(soc_true - soc_sto))),
        "soc_vs_current_column_coulomb_count_max_abs_diff":
            float(np.max(np.abs(soc_true - counted))),
        "solve_wall_s": wall,
        "ocv_table_25c": table,
        "ocv_table_fine_25c": fine_table,
    }
    with open(os.path.join(HERE, name + ".json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(name, json.dumps({k: meta[k] for k in (
        "duration_s", "completed", "capacity_ah_soc_definition", "soc_range", "voltage_range",
        "temp_range_c", "soc_vs_stoichiometry_max_abs_diff",
        "soc_vs_current_column_coulomb_count_max_abs_diff", "solve_wall_s")}))


if __name__ == "__main__":
    for profile in sys.argv[1:] or PROFILES:
        run(profile)
