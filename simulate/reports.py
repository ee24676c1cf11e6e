"""Free-text radiology reports consistent with a study's labels (what a labeler would read back from them)."""

from __future__ import annotations

import numpy as np

from simulate.population import Study

_POSITIVE = {
    "Atelectasis": "Bibasilar atelectasis.",
    "Cardiomegaly": "The heart is enlarged.",
    "Consolidation": "There is a focal consolidation.",
    "Edema": "There is mild pulmonary edema.",
    "Enlarged Cardiomediastinum": "The cardiomediastinal silhouette is widened.",
    "Fracture": "There is a displaced rib fracture.",
    "Lung Lesion": "A pulmonary nodule is seen.",
    "Lung Opacity": "There is an opacity in the lung.",
    "Pleural Effusion": "There is a pleural effusion.",
    "Pleural Other": "There is pleural thickening.",
    "Pneumonia": "Findings are consistent with pneumonia.",
    "Pneumothorax": "There is a pneumothorax.",
    "Support Devices": "Monitoring leads and a central venous catheter are in place.",
}
_UNCERTAIN = "Cannot exclude {}."
_NEGATIVE = "No {}."


def report_text(study: Study, procedure: str, rng: np.random.Generator) -> str:
    """A report in the MIMIC-CXR shape: header, examination, indication, technique, comparison, findings, impression.

    Identifying details are shown as ``___``, as de-identification leaves them.
    """
    positive = [_POSITIVE[c] for c, v in study.labels.items() if v == "1.0" and c in _POSITIVE]
    uncertain = [_UNCERTAIN.format(c.lower()) for c, v in study.labels.items() if v == "-1.0"]
    negative = [_NEGATIVE.format(c.lower()) for c, v in study.labels.items() if v == "0.0"]
    indication = str(
        rng.choice(
            [
                "___ with shortness of breath",
                "___ with cough and fever",
                "Evaluate for pneumonia.",
                "History: ___ with chest pain",
                "Line placement.",
            ]
        )
    )
    findings = " ".join(positive + uncertain + negative) or "Lungs are clear."
    impression = " ".join(positive[:2] + uncertain[:1]) or "No acute cardiopulmonary process."
    return (
        "                                 FINAL REPORT\n"
        f" EXAMINATION:  {procedure}\n\n"
        f" INDICATION:  {indication}\n\n"
        f" TECHNIQUE:  {procedure.title()}\n\n"
        " COMPARISON:  ___\n\n"
        f" FINDINGS: \n \n {findings}\n \n"
        f" IMPRESSION: \n \n {impression}\n"
    )
