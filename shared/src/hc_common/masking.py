"""Masking of personal data as the contract shows it: `李*华`, `450103********1234`,
`138****8000`."""


def mask_name(name: str) -> str:
    name = name.strip()
    if len(name) <= 1:
        return "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def mask_id_number(id_number: str) -> str:
    return id_number[:6] + "*" * (len(id_number) - 10) + id_number[-4:]


def mask_phone(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:]
