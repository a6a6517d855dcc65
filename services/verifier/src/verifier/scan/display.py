"""What a gate's screen shows, top to bottom, in Chinese or English: the `lines` of both
`POST /v1/gate/verify` and `POST /v1/verify` (one function, so that a gate and the staff page
say the same)."""

from verifier.scan.decision import hours_since
from verifier.scan.service import ScanResult

COLORS = {
    "green": ("绿码", "Green code"),
    "yellow": ("黄码", "Yellow code"),
    "red": ("红码", "Red code"),
}
REASONS = {
    "color_yellow": ("黄码", "Yellow code"),
    "color_red": ("红码", "Red code"),
    "nat_missing": ("无核酸记录", "No NAT result"),
    "nat_too_old": ("核酸超时", "NAT result too old"),
    "nat_positive": ("核酸阳性", "NAT positive"),
    "vaccination_insufficient": ("疫苗接种不足", "Not enough vaccine doses"),
    "credential_revoked": ("凭证已作废", "Credential revoked"),
    "credential_expired": ("凭证已过期", "Credential expired"),
    "credential_invalid": ("无效凭证", "Invalid credential"),
    "status_unavailable": ("健康状态暂不可查", "Health status unavailable"),
}
# The last line, always: the decision in words, as the contract names them.
VERDICT = {
    "pass": ("通行", "Pass"),
    "deny": ("禁止通行", "No entry"),
    "manual_check": ("人工核验", "Manual check"),
}


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
    lines.append(VERDICT[result.decision.decision][pick])
    return lines
