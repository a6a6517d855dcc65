"""What a gate's screen shows, top to bottom, in Chinese or English: the `lines` of both
`POST /v1/gate/verify` and `POST /v1/verify` (one function, so that a gate and the staff page
say the same)."""

from hc_common.i18n import COLORS, DECISIONS, REASONS
from verifier.scan.decision import hours_since
from verifier.scan.service import ScanResult


def gate_lines(result: ScanResult, english: bool) -> list[str]:
    pick = 1 if english else 0
    lines: list[str] = []
    if result.credential is not None:
        lines.append(result.credential.masked_name)
    status = result.status
    if status is not None:
        lines.append(COLORS.get(status.color, (status.color, status.color))[pick])
        if status.nat_result and status.nat_sample_time:
            hours = hours_since(status.nat_sample_time, result.checked_at)
            if english:
                lines.append(f"NAT {status.nat_result} {hours}h")
            else:
                result_text = "阴性" if status.nat_result == "negative" else "阳性"
                lines.append(f"核酸{result_text} {hours}小时")
        else:
            lines.append(REASONS["nat_missing"][pick])
    for reason in result.decision.reasons:
        text = REASONS[reason][pick]
        if text not in lines:
            lines.append(text)
    lines.append(DECISIONS[result.decision.decision][pick])
    return lines
