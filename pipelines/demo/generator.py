"""Return a realistic synthetic inbox of a ketamine clinic network, deterministic for a seed.

Calibrated to published real-world cohorts so that a director recognises the
shape of their own clinic:

- Induction: about 20% stop after the first infusion and about 45% never reach
  six (real-world IV ketamine series; e.g. Oliver et al. 2022, ORKA-1 and the
  Ketamine Clinics registry analyses report similar attrition).
- Depression: about half of completed inductions respond on PHQ-9 (>= 50%
  reduction) and 20-30% remit (PHQ-9 <= 4), as in Oliver et al. 2022
  (J Clin Psychiatry, n = 424: 50% response, 20% remission after 6 infusions).
- Relief among responders, without boosters: about 80% still responding at 4
  weeks and 60% at 8 weeks (Weibull shape 1.2, scale 98 days).
- Pain (CRPS, fibromyalgia, neuropathic): NRS baseline near 7/10, a >= 30%
  reduction in roughly half (IMMPACT "moderately important" change).
- Boosters every 3-8 weeks for many responders: some scheduled before relief
  fades (which censors relief), some when it fades.
- Vitals: a small systolic rise during infusion, about 1% hypertensive
  sessions (>= 180/110), rare desaturation; nausea in about 10% of sessions,
  dissociation in about 20%.

It also makes the awkward cases on purpose: missing baselines (no score, or
one older than the baseline window), same-day scores before and after an
infusion, clinics exporting date-only and date-time stamps, several
instruments per patient, PHQ-9 item columns with the total left empty, and a
few malformed rows (bad dates, out-of-range scores, unknown instruments and
patients, duplicates).
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

# (clinic_id, city, IANA time zone): the clinics.csv of the demo network (spec §10.1).
CLINICS = (
    ("austin", "Austin", "America/Chicago"),
    ("frisco", "Frisco", "America/Chicago"),
    ("denver", "Denver", "America/Denver"),
    ("tampa", "Tampa", "America/New_York"),
    ("boise", "Boise", "America/Boise"),
    ("raleigh", "Raleigh", "America/New_York"),
    ("tucson", "Tucson", "America/Phoenix"),
    ("omaha", "Omaha", "America/Chicago"),
    ("reno", "Reno", "America/Los_Angeles"),
    ("dayton", "Dayton", "America/New_York"),
    ("fresno", "Fresno", "America/Los_Angeles"),
    ("spokane", "Spokane", "America/Los_Angeles"),
    ("madison", "Madison", "America/Chicago"),
    ("tulsa", "Tulsa", "America/Chicago"),
    ("mesa", "Mesa", "America/Phoenix"),
    ("plano", "Plano", "America/Chicago"),
    ("akron", "Akron", "America/New_York"),
    ("eugene", "Eugene", "America/Los_Angeles"),
    ("salem", "Salem", "America/Los_Angeles"),
    ("provo", "Provo", "America/Denver"),
    ("macon", "Macon", "America/New_York"),
    ("billings", "Billings", "America/Denver"),
    ("fargo", "Fargo", "America/Chicago"),
    ("tacoma", "Tacoma", "America/Los_Angeles"),
    ("toledo", "Toledo", "America/New_York"),
    ("wichita", "Wichita", "America/Chicago"),
)
CLINIC_NAMES = tuple(clinic_id for clinic_id, _, _ in CLINICS)

# indication: (share of patients, domain, {instrument: probability the clinic scores it})
INDICATIONS = {
    "depression": (0.50, "mood", {"phq9": 1.0, "gad7": 0.4, "madrs": 0.25}),
    "ptsd": (0.10, "mood", {"pcl5": 1.0, "phq9": 0.8}),
    "anxiety": (0.07, "mood", {"gad7": 1.0, "phq9": 0.8}),
    "bipolar_depression": (0.05, "mood", {"phq9": 1.0, "madrs": 0.3}),
    "crps": (0.09, "pain", {"nrs_pain": 1.0, "bpi_interference": 0.3, "phq9": 0.5}),
    "fibromyalgia": (0.09, "pain", {"nrs_pain": 1.0, "bpi_interference": 0.3, "phq9": 0.5}),
    "neuropathic_pain": (0.06, "pain", {"nrs_pain": 1.0, "phq9": 0.4}),
    "migraine": (0.04, "pain", {"nrs_pain": 1.0, "phq9": 0.4}),
}
# instrument: (baseline mean, baseline sd, noise sd, score max)
INSTRUMENT_SCALES = {
    "phq9": (18.5, 3.5, 1.6, 27),
    "gad7": (14.0, 3.5, 1.4, 21),
    "madrs": (31.0, 6.0, 2.5, 60),
    "pcl5": (52.0, 11.0, 4.0, 80),
    "nrs_pain": (7.0, 1.3, 0.7, 10),
    "bpi_interference": (6.3, 1.6, 0.7, 10),
}
INSTRUMENT_CODES = tuple(INSTRUMENT_SCALES)
INDUCTION_SIZES = np.arange(1, 9)
INDUCTION_SIZE_SHARES = np.array([0.20, 0.08, 0.07, 0.05, 0.05, 0.50, 0.03, 0.02])
FOLLOW_UP_DAYS = np.array([7, 14, 28, 42, 56, 84, 112, 168, 224, 280])
FOLLOW_UP_ATTENDANCE = np.array([0.6, 0.55, 0.55, 0.5, 0.5, 0.45, 0.4, 0.35, 0.3, 0.3])
MAX_SERIES = 10
RELIEF_WEIBULL_SHAPE, RELIEF_WEIBULL_SCALE_DAYS = 1.2, 98.0
ADVERSE_EVENT_RATES = {
    "nausea": 0.10,
    "dissociation": 0.20,
    "headache": 0.06,
    "dizziness": 0.08,
    "vomiting": 0.02,
    "dysphoria": 0.02,
}


def gain_after(infusions: np.ndarray) -> np.ndarray:
    """Return the share of a full induction's effect reached after this many infusions (1 at six)."""
    tau = 1.8
    return (1 - np.exp(-infusions / tau)) / (1 - np.exp(-6 / tau))


# Patients are generated and written a chunk at a time: every array of a chunk is held at once (about 1.5 GB at
# its peak for 100,000 patients), where a million patients in one go took 14.5 GB. Inboxes of up to one chunk are
# the same as before chunking, so the tests' and benchmarks' cached inboxes keep their contents.
CHUNK_PATIENTS = 100_000


def write_inbox(out: Path, patients: int, clinics: int, seed: int, end_date: date, years: float) -> dict[str, int]:
    """Write clinics.csv, patients.csv, infusions.csv and assessments.csv into out; return the rows written per file."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for first_patient in range(0, max(patients, 1), CHUNK_PATIENTS):
        size = min(CHUNK_PATIENTS, patients - first_patient)
        frames = inbox_frames(size, clinics, seed, end_date, years, first_patient=first_patient)
        for name, frame in frames.items():
            if name == "clinics.csv" and first_patient > 0:
                continue  # the network's clinics, written once
            with open(out / name, "ab" if first_patient > 0 else "wb") as handle:
                # Empty text is written as an empty field, as clinics' exports do.
                frame.with_columns(pl.col(pl.String).replace("", None)).write_csv(
                    handle, include_header=first_patient == 0
                )
            counts[name] = counts.get(name, 0) + frame.height
    return counts


def inbox_frames(
    patients: int, clinics: int, seed: int, end_date: date, years: float, first_patient: int = 0
) -> dict[str, pl.DataFrame]:
    """Return the inbox files as frames of text, in the CSV contract's columns, for patients numbered from
    first_patient (0-based). Each chunk of patients has its own random stream; the network's clinic sizes are
    drawn once, from the seed's stream, so that every chunk shares them."""
    clinic_weights = np.random.default_rng(seed).dirichlet(np.full(clinics, 4.0))
    rng = np.random.default_rng(seed if first_patient == 0 else [seed, first_patient])
    if first_patient == 0:
        rng.dirichlet(np.full(clinics, 4.0))  # the draw of clinic_weights, so that a first chunk's stream is unchanged
    cohort = patient_cohort(rng, patients, clinic_weights, end_date, years) | {"first_patient": first_patient}
    series = treatment_series(rng, cohort)
    infusions = infusion_sessions(rng, series)
    assessments = assessment_scores(rng, cohort, series, infusions)
    frames = {
        "clinics.csv": clinics_file(cohort),
        "patients.csv": patients_file(cohort),
        "infusions.csv": infusions_file(rng, cohort, infusions),
        "assessments.csv": assessments_file(rng, cohort, assessments),
    }
    return with_malformed_rows(rng, frames, end_date)


def patient_cohort(rng: np.random.Generator, n: int, clinic_weights: np.ndarray, end_date: date, years: float) -> dict:
    """Return per-patient arrays: clinic, indication, demographics, first infusion day and latent response."""
    clinics = clinic_weights.size
    clinic = rng.choice(clinics, size=n, p=clinic_weights)
    names = list(INDICATIONS)
    shares = np.array([INDICATIONS[name][0] for name in names])
    indication = rng.choice(len(names), size=n, p=shares / shares.sum())
    is_pain = np.array([INDICATIONS[name][1] == "pain" for name in names])[indication]
    history_days = int(years * 365)
    # Day 0 is the first day of history; the last day of data is history_days.
    first_day = rng.integers(0, max(history_days - 7, 1), size=n)
    # Latent full-induction effect: a responder type and a non-responder type per domain.
    responder_type = rng.random(n) < np.where(is_pain, 0.52, 0.62)
    full_effect = np.where(
        is_pain,
        np.where(responder_type, rng.uniform(0.3, 0.7, n), rng.uniform(0.0, 0.28, n)),
        np.where(responder_type, rng.uniform(0.5, 0.95, n), rng.uniform(0.0, 0.45, n)),
    )
    scored = np.zeros((n, len(INSTRUMENT_CODES)), dtype=bool)
    for column, code in enumerate(INSTRUMENT_CODES):
        probability = np.array([INDICATIONS[name][2].get(code, 0.0) for name in names])[indication]
        scored[:, column] = rng.random(n) < probability
    baseline = np.zeros((n, len(INSTRUMENT_CODES)))
    for column, code in enumerate(INSTRUMENT_CODES):
        mean, sd, _, top = INSTRUMENT_SCALES[code]
        baseline[:, column] = np.clip(rng.normal(mean, sd, n), top * 0.25, top)
    return {
        "n": n,
        "clinics": clinics,
        "clinic": clinic,
        "indication_names": names,
        "indication": indication,
        "is_pain": is_pain,
        "first_day": first_day,
        "last_day": history_days,
        "start_date": end_date - timedelta(days=history_days),
        "full_effect": full_effect,
        "scored": scored,
        "primary_instrument": np.array([INSTRUMENT_CODES.index(next(iter(INDICATIONS[name][2]))) for name in names])[
            indication
        ],
        "baseline": baseline,
        "birth_year": end_date.year - np.clip(rng.normal(45, 13, n), 18, 85).astype(int),
        "sex": np.where(rng.random(n) < 0.6, "F", "M"),
        "referral": rng.choice(["psychiatrist", "primary_care", "self", "therapist", "pain_specialist"], size=n),
        # Clinics alternate between exporting date-times and bare dates.
        "clinic_exports_times": clinic % 2 == 0,
    }


def treatment_series(rng: np.random.Generator, cohort: dict) -> dict:
    """Return flat arrays, one entry per series: patient, start day, infusions, effect and relief."""
    n = cohort["n"]
    responds_at = np.where(cohort["is_pain"], 0.30, 0.50)
    rows: dict[str, list[np.ndarray]] = {
        k: []
        for k in (
            "patient",
            "number",
            "start",
            "size",
            "gaps",
            "effect_before",
            "effect_end",
            "relief_days",
            "relapse_effect",
            "next_start",
        )
    }
    active = np.ones(n, dtype=bool)
    start = cohort["first_day"].astype(float)
    effect_before = np.zeros(n)
    for number in range(1, MAX_SERIES + 1):
        patients = np.flatnonzero(active & (start <= cohort["last_day"]))
        if patients.size == 0:
            break
        m = patients.size
        if number == 1:
            size = rng.choice(INDUCTION_SIZES, size=m, p=INDUCTION_SIZE_SHARES)
        else:
            size = np.where(rng.random(m) < 0.85, 1, 2)
        # Gaps between infusions of a series: Monday-Wednesday-Friday-like, 1 to 4 days.
        gaps = rng.choice([1, 2, 2, 3, 3, 4], size=(m, 8))
        length = _row_prefix_sums(gaps, size)
        full = cohort["full_effect"][patients]
        if number == 1:
            effect_end = np.minimum(full * gain_after(size), 0.97)
        else:
            effect_end = np.minimum(full * rng.uniform(0.85, 1.05, m), 0.97)
        responded = effect_end >= responds_at[patients]
        relief = RELIEF_WEIBULL_SCALE_DAYS * rng.weibull(RELIEF_WEIBULL_SHAPE, m)
        relapse_effect = effect_end * rng.uniform(0.05, 0.55, m)
        # What comes next: responders often return for a booster, scheduled (3-8 weeks)
        # or when relief fades; a few non-responders return months later for a new induction.
        end = start[patients] + length
        scheduled = rng.random(m) < 0.4
        booster_gap = np.where(scheduled, rng.uniform(21, 56, m), relief + rng.uniform(3, 14, m))
        booster_gap = np.maximum(booster_gap, 16)
        returns = np.where(responded, rng.random(m) < 0.7, rng.random(m) < 0.05)
        gap = np.where(responded, booster_gap, rng.uniform(190, 400, m))
        # Whole days: the time of day is added per infusion, so that two infusions never share a date.
        next_start = np.where(returns, np.floor(end + gap), np.inf)
        for key, value in (
            ("patient", patients),
            ("number", np.full(m, number)),
            ("start", start[patients]),
            ("size", size),
            ("gaps", gaps),
            ("effect_before", effect_before[patients]),
            ("effect_end", effect_end),
            ("relief_days", np.where(responded, relief, 0.0)),
            ("relapse_effect", relapse_effect),
            ("next_start", next_start),
        ):
            rows[key].append(value)
        # The state at the next start: still relieved, or relapsed.
        still_relieved = responded & (gap < relief)
        effect_before[patients] = np.where(still_relieved, effect_end, np.where(responded, relapse_effect, effect_end))
        active[:] = False
        active[patients] = returns
        start[patients] = next_start
    flat = {key: np.concatenate(values) for key, values in rows.items()}
    flat["last_day"] = cohort["last_day"]
    return flat


def _row_prefix_sums(gaps: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Return, per row, the sum of the first size-1 gaps."""
    cumulative = np.concatenate([np.zeros((gaps.shape[0], 1)), np.cumsum(gaps, axis=1)], axis=1)
    return cumulative[np.arange(gaps.shape[0]), size - 1]


def infusion_sessions(rng: np.random.Generator, series: dict) -> dict:
    """Return flat arrays, one entry per infusion: series index, position in series and day (fractional)."""
    series_index = np.repeat(np.arange(series["size"].size), series["size"])
    first_of_series = np.repeat(np.cumsum(series["size"]) - series["size"], series["size"])
    position = np.arange(series_index.size) - first_of_series + 1
    offsets = np.concatenate([np.zeros((series["gaps"].shape[0], 1)), np.cumsum(series["gaps"], axis=1)], axis=1)
    day_in_series = offsets[series_index, position - 1]
    # Infusions start between 08:00 and 15:00, on the quarter hour.
    hour = rng.integers(32, 61, series_index.size) / 4 / 24
    day = series["start"][series_index] + day_in_series + hour
    # Nothing after the last day of data: a series still running is cut there.
    before_end = day < series["last_day"]
    return {
        "series": series_index[before_end],
        "patient": series["patient"][series_index][before_end],
        "position": position[before_end],
        "day": day[before_end],
    }


def effect_at(series: dict, infusions_received: np.ndarray, series_index: np.ndarray, days_after_end: np.ndarray):
    """Return the reduction from baseline at a moment: rising with infusions, held while relieved, then lost."""
    size = series["size"][series_index]
    before = series["effect_before"][series_index]
    end = series["effect_end"][series_index]
    during = before + (end - before) * gain_after(infusions_received) / gain_after(np.maximum(size, 1))
    relieved = days_after_end < series["relief_days"][series_index]
    after = np.where(relieved | (series["relief_days"][series_index] == 0), end, series["relapse_effect"][series_index])
    return np.where(days_after_end <= 0, during, after)


def assessment_scores(rng: np.random.Generator, cohort: dict, series: dict, infusions: dict) -> dict:
    """Return flat arrays, one entry per scored questionnaire: patient, instrument, day and score."""
    patient_of_series = series["patient"]
    end_day = series["start"] + _series_length(series)
    moments = []

    # Before each infusion (20-40 minutes before); ~7% are missed, and the very first
    # one is missed for ~5% of patients (no baseline).
    first_ever = (series["number"][infusions["series"]] == 1) & (infusions["position"] == 1)
    kept = rng.random(infusions["day"].size) >= np.where(first_ever, 0.05, 0.07)
    moments.append(
        (
            infusions["series"][kept],
            infusions["day"][kept] - rng.uniform(20, 40, kept.sum()) / 1440,
            infusions["position"][kept] - 1,
        )
    )
    # Same day, 2-4 hours after an infusion, at clinics that record times.
    exports_times = cohort["clinic_exports_times"][patient_of_series[infusions["series"]]]
    after = exports_times & (rng.random(infusions["day"].size) < 0.15)
    moments.append(
        (
            infusions["series"][after],
            infusions["day"][after] + rng.uniform(2, 4, after.sum()) / 24,
            infusions["position"][after],
        )
    )
    # Follow-ups after the series, until the next series starts or the data ends.
    series_index = np.repeat(np.arange(end_day.size), FOLLOW_UP_DAYS.size)
    offset = np.tile(FOLLOW_UP_DAYS, end_day.size) + rng.integers(-2, 3, series_index.size)
    day = np.floor(end_day[series_index]) + offset + rng.integers(36, 68, series_index.size) / 4 / 24
    attended = rng.random(series_index.size) < np.tile(FOLLOW_UP_ATTENDANCE, end_day.size)
    in_time = (day < np.floor(series["next_start"][series_index])) & (day <= cohort["last_day"])
    keep = attended & in_time
    moments.append((series_index[keep], day[keep], series["size"][series_index[keep]]))
    # An old intake score, outside the baseline window, for some first series.
    intake = np.flatnonzero((series["number"] == 1) & (rng.random(end_day.size) < 0.04))
    moments.append((intake, series["start"][intake] - rng.uniform(35, 60, intake.size), np.zeros(intake.size, int)))

    series_index = np.concatenate([m[0] for m in moments])
    day = np.concatenate([m[1] for m in moments])
    received = np.concatenate([m[2] for m in moments])
    days_after_end = day - end_day[series_index]
    effect = effect_at(
        series, received, series_index, np.where(received < series["size"][series_index], 0, days_after_end)
    )
    effect = np.where(day < series["start"][series_index], 0.0, effect)
    patient = patient_of_series[series_index]
    in_history = day < cohort["last_day"]
    patient, day, effect = patient[in_history], day[in_history], effect[in_history]

    # One row per (moment, instrument the patient is scored on); an instrument is
    # skipped now and then, and secondary instruments improve less.
    scored = cohort["scored"][patient]
    moment_index, instrument = np.nonzero(scored & (rng.random(scored.shape) < 0.9))
    primary = cohort["primary_instrument"][patient[moment_index]] == instrument
    scales = np.array([INSTRUMENT_SCALES[c] for c in INSTRUMENT_CODES])
    baseline = cohort["baseline"][patient[moment_index], instrument]
    gain = effect[moment_index] * np.where(primary, 1.0, 0.8)
    noise = rng.normal(0, scales[instrument, 2])
    score = np.clip(np.rint(baseline * (1 - gain) + noise), 0, scales[instrument, 3])
    return {"patient": patient[moment_index], "instrument": instrument, "day": day[moment_index], "score": score}


def _series_length(series: dict) -> np.ndarray:
    return _row_prefix_sums(series["gaps"], series["size"])


def timestamp_text(start: date, day: np.ndarray, with_time: np.ndarray) -> pl.Series:
    """Return ISO 8601 text for fractional days since start: a date-time, or a bare date where with_time is False."""
    minutes = np.floor(day * 1440).astype("int64").astype("timedelta64[m]")
    moments = (np.datetime64(start.isoformat(), "m") + minutes).astype("datetime64[us]")
    stamped = pl.DataFrame({"at": moments, "with_time": with_time}).select(
        pl.when(pl.col("with_time"))
        .then(pl.col("at").dt.to_string("%Y-%m-%dT%H:%M:00"))
        .otherwise(pl.col("at").dt.to_string("%Y-%m-%d"))
    )
    return stamped.to_series()


def patient_id_text(patient_index: np.ndarray) -> pl.Series:
    """Return PT0000001-style identifiers for 0-based patient indexes (string work done by Polars, not NumPy)."""
    return pl.select(pl.format("PT{}", (pl.lit(pl.Series(patient_index)) + 1).cast(pl.String).str.zfill(7))).to_series()


def text_of(values: np.ndarray) -> pl.Series:
    """Return numbers as CSV text (cast by Polars: far faster than NumPy's astype(str))."""
    return pl.Series(values).cast(pl.String)


def clinics_file(cohort: dict) -> pl.DataFrame:
    """Return clinics.csv: each clinic of the network with its name and time zone; the last one gives no zone
    (it takes the clinic_timezone setting), as a clinic that never filled it in would."""
    rows = CLINICS[: cohort["clinics"]]
    zones = [zone for _, _, zone in rows]
    if len(rows) > 4:
        zones[-1] = ""
    return pl.DataFrame(
        {
            "clinic_id": [clinic_id for clinic_id, _, _ in rows],
            "clinic_name": [f"{city} Ketamine Center" for _, city, _ in rows],
            "timezone": zones,
        }
    )


def patients_file(cohort: dict) -> pl.DataFrame:
    names = np.array(cohort["indication_names"])
    return pl.DataFrame(
        {
            "patient_id": patient_id_text(cohort["first_patient"] + np.arange(cohort["n"])),
            "clinic_id": np.array(CLINIC_NAMES)[cohort["clinic"]],
            "birth_year": text_of(cohort["birth_year"]),
            "sex": cohort["sex"],
            "primary_indication": names[cohort["indication"]],
            "referral_source": cohort["referral"],
        }
    )


def infusions_file(rng: np.random.Generator, cohort: dict, infusions: dict) -> pl.DataFrame:
    """Return infusions.csv: dose, duration, vitals with a small rise, adverse events and rescue medication."""
    n = infusions["day"].size
    patient = infusions["patient"]
    pain = cohort["is_pain"][patient]
    # Each patient's dose is set at the start and kept, with an occasional step: pain protocols run higher
    # (0.5-1.2 mg/kg), mood protocols near the standard 0.5 mg/kg (some at 0.4 for tolerability).
    patient_dose = np.where(
        cohort["is_pain"],
        rng.choice([0.5, 0.75, 0.8, 1.0, 1.2], cohort["n"]),
        rng.choice([0.4, 0.5, 0.5, 0.5, 0.6, 0.75, 0.8], cohort["n"]),
    )
    dose = np.round(patient_dose[patient] * np.where(rng.random(n) < 0.15, rng.choice([0.8, 1.2], n), 1.0), 2)
    duration = np.where(pain, rng.choice([120, 180, 240], n), rng.choice([40, 40, 45, 60], n))
    sys_pre = np.rint(rng.normal(127, 12, n))
    dia_pre = np.rint(rng.normal(78, 7, n))
    sys_rise = np.maximum(rng.normal(12, 6, n), 0)
    dia_rise = np.maximum(rng.normal(6, 4, n), 0)
    hypertensive = rng.random(n) < 0.008
    sys_max = np.where(hypertensive, np.maximum(sys_pre + sys_rise, rng.uniform(180, 200, n)), sys_pre + sys_rise)
    dia_max = np.where(hypertensive & (rng.random(n) < 0.3), rng.uniform(110, 118, n), dia_pre + dia_rise)
    spo2 = np.clip(np.rint(rng.normal(96.5, 1.4, n)), 80, 100)
    spo2 = np.where(rng.random(n) < 0.004, rng.integers(85, 90, n), spo2)
    events = {code: rng.random(n) < rate for code, rate in ADVERSE_EVENT_RATES.items()}
    events["hypertension"] = (sys_max >= 180) | (dia_max >= 110)
    codes = (
        pl.DataFrame(events)
        .select(
            pl.concat_str(
                [pl.when(pl.col(code)).then(pl.lit(code)) for code in events], separator=";", ignore_nulls=True
            )
        )
        .to_series()
    )
    rescue = np.where(
        events["nausea"] | events["vomiting"],
        "ondansetron 4 mg IV",
        np.where(events["hypertension"], "labetalol 10 mg IV", np.where(events["dysphoria"], "midazolam 1 mg IV", "")),
    )
    clinic = cohort["clinic"][patient]
    # Each patient has a main clinician (of three per clinic, the first busiest) who gives most of their infusions;
    # cover from the others on about one infusion in five.
    main_clinician = rng.choice([1, 2, 3], size=cohort["n"], p=[0.5, 0.3, 0.2])[patient]
    clinician = np.where(rng.random(n) < 0.8, main_clinician, rng.integers(1, 4, n))
    provider = pl.select(
        pl.format("{}-md{}", pl.lit(pl.Series(np.array(CLINIC_NAMES)[clinic])), pl.lit(pl.Series(clinician)))
    ).to_series()
    return (
        pl.DataFrame(
            {
                "patient_id": patient_id_text(cohort["first_patient"] + patient),
                "infused_at": timestamp_text(
                    cohort["start_date"], infusions["day"], cohort["clinic_exports_times"][patient]
                ),
                "dose_mg_per_kg": text_of(dose),
                "duration_min": text_of(duration),
                "provider_id": provider,
                "bp_systolic_pre": text_of(sys_pre.astype(int)),
                "bp_diastolic_pre": text_of(dia_pre.astype(int)),
                "bp_systolic_max": text_of(np.rint(sys_max).astype(int)),
                "bp_diastolic_max": text_of(np.rint(dia_max).astype(int)),
                "heart_rate_max": text_of(np.rint(rng.normal(88, 11, n)).astype(int)),
                "spo2_min": text_of(spo2.astype(int)),
                "adverse_events": codes,
                "rescue_medication": rescue,
            }
        )
        .with_columns(pl.col("rescue_medication").replace("", None))
        .sort("patient_id", "infused_at")
    )


def assessments_file(rng: np.random.Generator, cohort: dict, assessments: dict) -> pl.DataFrame:
    """Return assessments.csv; one clinic in four exports PHQ-9 items, leaving the total empty at times."""
    patient = assessments["patient"]
    n = patient.size
    # Clinics exporting times still log some follow-ups by date only.
    with_time = cohort["clinic_exports_times"][patient] & (rng.random(n) < 0.8)
    code = np.array(INSTRUMENT_CODES)[assessments["instrument"]]
    score = assessments["score"].astype(int)
    frame = pl.DataFrame(
        {
            "patient_id": patient_id_text(cohort["first_patient"] + patient),
            "instrument": code,
            "administered_at": timestamp_text(cohort["start_date"], assessments["day"], with_time),
            "score": text_of(score),
        }
    )
    exports_items = (cohort["clinic"][patient] % 4 == 3) & (code == "phq9")
    items = np.zeros((n, 9), dtype=np.int16)
    items[exports_items] = phq9_items(rng, score[exports_items])
    leave_total_empty = exports_items & (rng.random(n) < 0.3)
    exporting = pl.lit(pl.Series(exports_items))
    frame = frame.with_columns(
        pl.when(pl.lit(pl.Series(leave_total_empty))).then(pl.lit("")).otherwise(pl.col("score")).alias("score"),
        *[
            pl.when(exporting)
            .then(pl.lit(pl.Series(items[:, k])).cast(pl.String))
            .otherwise(pl.lit(""))
            .alias(f"item_{k + 1}")
            for k in range(9)
        ],
    )
    # Duplicate moments (same instrument, same stamp) come from date-only exports; keep the first.
    return frame.unique(["patient_id", "instrument", "administered_at"], keep="first", maintain_order=True).sort(
        "patient_id", "administered_at", "instrument"
    )


def phq9_items(rng: np.random.Generator, totals: np.ndarray) -> np.ndarray:
    """Return nine items of 0-3 summing to each total; item 9 (self-harm) is rarely above 0."""
    n = totals.size
    items = np.zeros((n, 9), dtype=int)
    remaining = totals.copy()
    # Item 9 is >= 1 mostly in severe depression.
    items[:, 8] = np.where((totals >= 15) & (rng.random(n) < 0.25), rng.integers(1, 3, n), 0)
    remaining -= items[:, 8]
    order = np.argsort(rng.random((n, 8)), axis=1)
    for step in range(24):
        column = order[:, step % 8]
        room = items[np.arange(n), column] < 3
        add = (remaining > 0) & room
        items[np.arange(n), column] += add
        remaining -= add
    # Any remainder (when the first eight are full) goes to item 9.
    items[:, 8] += remaining
    return items


def with_malformed_rows(
    rng: np.random.Generator, frames: dict[str, pl.DataFrame], end_date: date
) -> dict[str, pl.DataFrame]:
    """Return the frames with a few bad rows of each kind appended, as clinics really send them."""
    assessments = frames["assessments.csv"]
    infusions = frames["infusions.csv"]
    some = max(3, assessments.height // 2000)

    def pick(frame: pl.DataFrame, count: int) -> pl.DataFrame:
        return frame.sample(n=min(count, frame.height), seed=int(rng.integers(1 << 31)))

    bad_assessments = [
        pick(assessments, some).with_columns(administered_at=pl.col("administered_at").str.replace_all("-", "/")),
        pick(assessments, some).with_columns(
            score=pl.lit("99"), instrument=pl.lit("phq9"), **{f"item_{k}": pl.lit("") for k in range(1, 10)}
        ),
        pick(assessments, some).with_columns(instrument=pl.lit("phq-9x")),
        pick(assessments, some).with_columns(patient_id=pl.lit("UNKNOWN-1")),
        pick(assessments, some).with_columns(patient_id=pl.lit("")),
        pick(assessments, some),  # exact duplicates, kept once
        pick(assessments, some).with_columns(administered_at=pl.lit((end_date + timedelta(days=400)).isoformat())),
    ]
    bad_infusions = [
        pick(infusions, max(2, some // 4)).with_columns(infused_at=pl.lit("last tuesday")),
        pick(infusions, max(2, some // 4)).with_columns(dose_mg_per_kg=pl.lit("-0.5")),
        pick(infusions, max(2, some // 4)),
    ]
    # Bad rows sit among the patient's other rows, as they do in real exports.
    return {
        "clinics.csv": frames["clinics.csv"],
        "patients.csv": frames["patients.csv"],
        "infusions.csv": pl.concat([infusions, *bad_infusions]).sort("patient_id", maintain_order=True),
        "assessments.csv": pl.concat([assessments, *bad_assessments]).sort("patient_id", maintain_order=True),
    }
