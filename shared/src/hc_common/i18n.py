"""The system's one translation table: every word a person reads (problem texts, validation
messages, field names, gate lines, CSV cells), Simplified Chinese by default and English when
the request asks for it (`Accept-Language: en`).

A text is looked up by key: `words(REASONS, "color_red", english)`. Code that has no request at
hand (a batch's row checks, deep in a service) reads the request's language from `english()`,
which a dependency or handler sets with `use_english()` for the request's task."""

import re
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

# key -> (Chinese, English)
Table = Mapping[str, tuple[str, str]]

COLORS: Table = {
    "green": ("绿码", "Green code"),
    "yellow": ("黄码", "Yellow code"),
    "red": ("红码", "Red code"),
}
# The scan's reason codes in words (gate lines, the staff page, the access-record CSV).
REASONS: Table = {
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
# A scan's decision in words, as the contract names them.
DECISIONS: Table = {
    "pass": ("通行", "Pass"),
    "deny": ("禁止通行", "No entry"),
    "manual_check": ("人工核验", "Manual check"),
}

_english: ContextVar[bool] = ContextVar("hc_english", default=False)


def wants_english(accept_language: str | None) -> bool:
    """True when the first language the client names is English."""
    if not accept_language:
        return False
    first = accept_language.split(",", 1)[0].strip().lower()
    return first.startswith("en")


def use_english(flag: bool) -> None:
    """Set the language of the current request's task (its dependencies and handler)."""
    _english.set(flag)


def english() -> bool:
    """The language use_english() set for this task (Chinese when nothing did)."""
    return _english.get()


def words(table: Table, key: str, english: bool | None = None) -> str:
    """`key` in words from `table`, in `english` or else the request's language; the key
    itself when the table lacks it."""
    pair = table.get(key)
    if pair is None:
        return key
    return pair[1] if (_english.get() if english is None else english) else pair[0]


# An appeal's status in words (the SMS that tells the applicant the outcome).
APPEAL_STATUSES: Table = {
    "open": ("待处理", "Open"),
    "in_review": ("处理中", "In review"),
    "resolved": ("已解决", "Resolved"),
    "rejected": ("未予支持", "Rejected"),
}

# --- Problems: a problem's `code` in words (its title). Services add theirs with
# hc_common.errors.register_messages(), which writes here.
PROBLEMS: dict[str, tuple[str, str]] = {
    "not_found": ("资源不存在", "Not found"),
    "method_not_allowed": ("不支持该请求方法", "Method not allowed"),
    "payload_too_large": ("请求体过大", "Request body too large"),
    "validation_error": ("请求参数有误", "The request is not valid"),
    "invalid_json": ("请求体不是有效的 JSON", "The request body is not valid JSON"),
    "unauthorized": ("未登录或凭据无效", "Missing or invalid credentials"),
    "forbidden": ("无权执行此操作", "Not allowed"),
    "too_many_requests": ("请求过于频繁", "Too many requests"),
    "conflict": ("与现有数据冲突", "Conflicts with existing data"),
    "internal_error": ("服务内部错误", "Internal error"),
    "service_unavailable": ("服务暂不可用", "Service unavailable"),
    "invalid_id_number": ("身份证号码无效", "Invalid identity number"),
    "invalid_phone": ("手机号码无效", "Invalid mobile phone number"),
    "invalid_code": ("验证码错误或已过期", "Wrong or expired code"),
    "missing": ("缺少必填字段", "Field required"),
    # Shared by more than one service: pages, times, and a trace's period and window.
    "invalid_cursor": ("分页游标无效", "Invalid cursor"),
    "invalid_time": (
        "时间格式无效，应为带时区的 RFC 3339 时间",
        "Not an RFC 3339 time with its offset",
    ),
    "invalid_period": ("结束时间不能早于开始时间", "`to` must not be before `from`"),
    "period_too_long": ("时间范围最长 14 天", "`from` and `to` are at most 14 days apart"),
    "invalid_window": ("时间窗口须为 1-240 分钟", "window_minutes must be 1-240"),
}

# --- Fields: every field of every request (body, query, path) in words, for the detail of a
# validation problem ("身份证号码：……") and of a batch's rejected row. The machine path stays in
# `errors[].field`. Keyed by the field's own name (the last name of the error's path).
FIELDS: Table = {
    # where an error has no field of its own
    "body": ("请求体", "Request body"),
    "row": ("该行", "Row"),
    # people and their credentials (issuer, health-records)
    "id_number": ("身份证号码", "ID number"),
    "phone": ("手机号码", "Phone number"),
    "name": ("姓名", "Name"),
    "photo": ("照片", "Photo"),
    "face_check_token": ("人脸核验凭证", "Face check token"),
    "relationship": ("与本人关系", "Relationship"),
    "code": ("验证码", "Code"),
    "credential_id": ("凭证编号", "Credential id"),
    "layout": ("版式", "Layout"),
    "category": ("类别", "Category"),
    "description": ("描述", "Description"),
    "status": ("状态", "Status"),
    "note": ("备注", "Note"),
    "appeal_id": ("申诉编号", "Appeal id"),
    "reply": ("答复", "Reply"),
    # lists
    "limit": ("每页条数", "Limit"),
    "cursor": ("分页游标", "Cursor"),
    "after": ("起始编号", "After"),
    # venues, members, devices, rules, access records (venue-admin)
    "venue_id": ("场所编号", "Venue id"),
    "address": ("地址", "Address"),
    "region_code": ("行政区划代码", "Region code"),
    "member_id": ("成员编号", "Member id"),
    "user_id": ("用户编号", "User id"),
    "permissions": ("权限", "Permissions"),
    "device_id": ("闸机编号", "Device id"),
    "device_secret": ("闸机密钥", "Device secret"),
    "manufacturer": ("生产厂家", "Manufacturer"),
    "model": ("型号", "Model"),
    "allowed_colors": ("允许的码色", "Allowed colours"),
    "max_nat_age_hours": ("核酸有效时长（小时）", "Maximum NAT age (hours)"),
    "min_vaccine_doses": ("最少疫苗剂次", "Minimum vaccine doses"),
    "decision": ("核验结果", "Decision"),
    "from": ("开始时间", "From"),
    "to": ("结束时间", "To"),
    # health records
    "subject_id": ("主体编号", "Subject id"),
    "subject_ids": ("主体编号列表", "Subject ids"),
    "color": ("码色", "Colour"),
    "reason": ("原因", "Reason"),
    "results": ("核酸检测结果", "Results"),
    "report_id": ("报告编号", "Report id"),
    "sample_time": ("采样时间", "Sample time"),
    "report_time": ("报告时间", "Report time"),
    "result": ("检测结果", "Result"),
    "institution": ("检测机构", "Institution"),
    "records": ("接种记录", "Records"),
    "record_id": ("记录编号", "Record id"),
    "vaccine": ("疫苗名称", "Vaccine"),
    "dose_number": ("接种剂次", "Dose number"),
    "administered_at": ("接种时间", "Administered at"),
    "site": ("接种点", "Site"),
    # contact tracing
    "trace_id": ("追踪编号", "Trace id"),
    "window_minutes": ("时间窗口（分钟）", "Window (minutes)"),
    "apply_color": ("赋予的码色", "Colour to apply"),
    # scans (verifier)
    "qr": ("二维码内容", "QR code"),
}
# The same name meaning another thing under a path: a venue's or a gate's `name` is not a
# person's. Path prefix -> its own words.
FIELDS_UNDER: Mapping[str, Table] = {
    "/v1/venues": {"name": ("名称", "Name")},
}

# --- Validation messages: each error type Pydantic has (pydantic_core's ErrorType) and the
# project's own codes (PydanticCustomError), with the error's `ctx` values in braces. In
# Chinese a choice of values ({expected}) is listed as `a、b、c`.
VALIDATION: Table = {
    # presence and shape
    "missing": ("必须填写", "Field required"),
    "extra_forbidden": ("不允许此字段", "Extra inputs are not permitted"),
    "json_invalid": ("不是有效的 JSON", "Not valid JSON"),
    "json_type": ("应为 JSON 文本", "JSON input should be string, bytes or bytearray"),
    "model_type": ("应为 JSON 对象", "Input should be an object"),
    "model_attributes_type": ("应为 JSON 对象", "Input should be an object"),
    "dataclass_type": ("应为 JSON 对象", "Input should be an object"),
    "dataclass_exact_type": ("应为 JSON 对象", "Input should be an object"),
    "named_tuple_type": ("应为数组", "Input should be a valid array"),
    "dict_type": ("应为 JSON 对象", "Input should be an object"),
    "frozen_dict_type": ("应为 JSON 对象", "Input should be an object"),
    "ordered_dict_type": ("应为 JSON 对象", "Input should be an object"),
    "counter_type": ("应为 JSON 对象", "Input should be an object"),
    "mapping_type": ("应为 JSON 对象", "Input should be an object"),
    "invalid_key": ("键应为字符串", "Keys should be strings"),
    "list_type": ("应为数组", "Input should be a valid array"),
    "deque_type": ("应为数组", "Input should be a valid array"),
    "tuple_type": ("应为数组", "Input should be a valid array"),
    "set_type": ("应为数组", "Input should be a valid array"),
    "frozen_set_type": ("应为数组", "Input should be a valid array"),
    "set_item_not_hashable": ("数组元素应为简单值", "Set items should be hashable"),
    "iterable_type": ("应为数组", "Input should be iterable"),
    "iteration_error": ("数组无法读取", "Error iterating over the input"),
    "too_short": (
        "至少 {min_length} 项",
        "Should have at least {min_length} item{min_length_plural}",
    ),
    "too_long": (
        "最多 {max_length} 项",
        "Should have at most {max_length} item{max_length_plural}",
    ),
    "none_required": ("应为空（null）", "Input should be null"),
    "default_factory_not_called": ("因其他字段有误而未校验", "Not checked: other fields are wrong"),
    "recursion_loop": ("存在循环引用", "Recursion error - cyclic reference detected"),
    "recursion_depth_exceeded": ("嵌套层数过多", "Nested too deeply"),
    "frozen_field": ("不可修改", "Field is frozen"),
    "frozen_instance": ("不可修改", "Instance is frozen"),
    "no_such_attribute": ("不允许此字段", "Object has no attribute '{attribute}'"),
    "get_attribute_error": ("无法读取", "Error extracting attribute"),
    "needs_python_object": ("无法以 JSON 表示", "Cannot be given as JSON"),
    "is_instance_of": ("类型不正确", "Input should be an instance of {class}"),
    "is_subclass_of": ("类型不正确", "Input should be a subclass of {class}"),
    "callable_type": ("类型不正确", "Input should be callable"),
    "arguments_type": ("参数格式不正确", "Arguments must be a tuple, list or a dictionary"),
    "missing_argument": ("缺少必填参数", "Missing required argument"),
    "unexpected_keyword_argument": ("不允许此参数", "Unexpected keyword argument"),
    "missing_keyword_only_argument": ("缺少必填参数", "Missing required keyword only argument"),
    "unexpected_positional_argument": ("不允许此参数", "Unexpected positional argument"),
    "missing_positional_only_argument": ("缺少必填参数", "Missing required positional argument"),
    "multiple_argument_values": ("参数重复", "Got multiple values for argument"),
    "union_tag_invalid": (
        "{discriminator} 的值 {tag} 无效，应为：{expected_tags}",
        "Input tag {tag} found using {discriminator} does not match any of the expected tags: "
        "{expected_tags}",
    ),
    "union_tag_not_found": (
        "缺少用于区分类型的字段 {discriminator}",
        "Unable to extract tag using discriminator {discriminator}",
    ),
    "missing_sentinel_error": ("取值无效", "Input should be the 'MISSING' sentinel"),
    "ellipsis_error": ("取值无效", "Input should be the 'Ellipsis' literal"),
    # text
    "string_type": ("应为字符串", "Input should be a valid string"),
    "string_sub_type": ("应为字符串", "Input should be a string"),
    "string_unicode": ("应为有效的 Unicode 字符串", "Input should be a valid unicode string"),
    "string_too_short": (
        "至少 {min_length} 个字符",
        "String should have at least {min_length} character{min_length_plural}",
    ),
    "string_too_long": (
        "最多 {max_length} 个字符",
        "String should have at most {max_length} character{max_length_plural}",
    ),
    "string_pattern_mismatch": (
        "格式不正确（应匹配 {pattern}）",
        "String should match pattern '{pattern}'",
    ),
    "string_not_ascii": ("只能包含 ASCII 字符", "String should contain only ASCII characters"),
    "bytes_type": ("应为字符串", "Input should be a valid string"),
    "bytes_too_short": (
        "至少 {min_length} 个字节",
        "Data should have at least {min_length} byte{min_length_plural}",
    ),
    "bytes_too_long": (
        "最多 {max_length} 个字节",
        "Data should have at most {max_length} byte{max_length_plural}",
    ),
    "bytes_invalid_encoding": (
        "不是有效的 {encoding} 编码",
        "Data should be valid {encoding}",
    ),
    # choices
    "literal_error": ("应为以下之一：{expected}", "Input should be {expected}"),
    "enum": ("应为以下之一：{expected}", "Input should be {expected}"),
    # numbers and truth values
    "int_type": ("应为整数", "Input should be a valid integer"),
    "int_parsing": ("应为整数", "Input should be a valid integer"),
    "int_parsing_size": ("整数过大", "Integer too large"),
    "int_from_float": ("应为整数，不能带小数", "Input should be a whole number"),
    "float_type": ("应为数字", "Input should be a valid number"),
    "float_parsing": ("应为数字", "Input should be a valid number"),
    "finite_number": ("应为有限的数字", "Input should be a finite number"),
    "decimal_type": ("应为数字", "Input should be a valid decimal"),
    "decimal_parsing": ("应为数字", "Input should be a valid decimal"),
    "decimal_max_digits": (
        "最多 {max_digits} 位数字",
        "Decimal input should have no more than {max_digits} digits in total",
    ),
    "decimal_max_places": (
        "最多 {decimal_places} 位小数",
        "Decimal input should have no more than {decimal_places} decimal places",
    ),
    "decimal_whole_digits": (
        "整数部分最多 {whole_digits} 位",
        "Decimal input should have no more than {whole_digits} digits before the point",
    ),
    "fraction_type": ("应为数字", "Input should be a valid fraction"),
    "fraction_parsing": ("应为数字", "Input is not a valid fraction"),
    "complex_type": ("应为数字", "Input should be a valid number"),
    "complex_str_parsing": ("应为数字", "Input should be a valid number"),
    "bool_type": ("应为 true 或 false", "Input should be a valid boolean"),
    "bool_parsing": ("应为 true 或 false", "Input should be a valid boolean"),
    "greater_than": ("应大于 {gt}", "Input should be greater than {gt}"),
    "greater_than_equal": (
        "应大于或等于 {ge}",
        "Input should be greater than or equal to {ge}",
    ),
    "less_than": ("应小于 {lt}", "Input should be less than {lt}"),
    "less_than_equal": ("应小于或等于 {le}", "Input should be less than or equal to {le}"),
    "multiple_of": ("应为 {multiple_of} 的倍数", "Input should be a multiple of {multiple_of}"),
    # dates and times
    "date_type": ("应为日期（如 2026-11-27）", "Input should be a valid date"),
    "date_parsing": ("应为日期（如 2026-11-27）", "Input should be a valid date ({error})"),
    "date_from_datetime_parsing": (
        "应为日期（如 2026-11-27）",
        "Input should be a valid date ({error})",
    ),
    "date_from_datetime_inexact": ("应为日期，不含时刻", "Input should be a date without a time"),
    "date_past": ("应为过去的日期", "Date should be in the past"),
    "date_future": ("应为将来的日期", "Date should be in the future"),
    "time_type": ("应为时刻（如 08:00:00）", "Input should be a valid time"),
    "time_parsing": ("应为时刻（如 08:00:00）", "Input should be a valid time ({error})"),
    "datetime_type": (
        "应为带时区的时间（如 2026-11-27T08:00:00Z）",
        "Input should be a valid datetime",
    ),
    "datetime_parsing": (
        "应为带时区的时间（如 2026-11-27T08:00:00Z）",
        "Input should be a valid datetime ({error})",
    ),
    "datetime_object_invalid": (
        "应为带时区的时间（如 2026-11-27T08:00:00Z）",
        "Invalid datetime object ({error})",
    ),
    "datetime_from_date_parsing": (
        "应为带时区的时间（如 2026-11-27T08:00:00Z）",
        "Input should be a valid datetime or date ({error})",
    ),
    "datetime_past": ("应为过去的时间", "Input should be in the past"),
    "datetime_future": ("应为将来的时间", "Input should be in the future"),
    "timezone_naive": ("不应带时区", "Input should not have timezone info"),
    "timezone_aware": (
        "应带时区（如 2026-11-27T08:00:00Z）",
        "Input should have timezone info",
    ),
    "timezone_offset": (
        "时区偏移应为 {tz_expected} 秒",
        "Timezone offset of {tz_expected} seconds required",
    ),
    "time_delta_type": ("应为时长", "Input should be a valid duration"),
    "time_delta_parsing": ("应为时长", "Input should be a valid duration ({error})"),
    # URLs and UUIDs
    "url_type": ("应为网址", "URL input should be a string"),
    "url_parsing": ("应为有效的网址", "Input should be a valid URL ({error})"),
    "url_syntax_violation": ("应为有效的网址", "Input violated strict URL syntax rules ({error})"),
    "url_too_long": (
        "网址最长 {max_length} 个字符",
        "URL should have at most {max_length} character{max_length_plural}",
    ),
    "url_scheme": ("网址协议应为 {expected_schemes}", "URL scheme should be {expected_schemes}"),
    "uuid_type": ("应为 UUID", "UUID input should be a string"),
    "uuid_parsing": ("应为有效的 UUID", "Input should be a valid UUID ({error})"),
    "uuid_version": (
        "UUID 版本应为 {expected_version}",
        "UUID version {expected_version} expected",
    ),
    # a validator's own failure: its message in VALUE_ERRORS when it is one of ours
    "value_error": ("取值无效", "Value error, {error}"),
    "assertion_error": ("取值无效", "Assertion failed, {error}"),
    # the project's own codes (PydanticCustomError)
    "invalid_text": ("含有不允许的控制字符", "Contains control characters that are not allowed"),
    "invalid_id": ("不是本系统的编号", "Not an id of this system"),
    "invalid_id_number": ("不是有效的身份证号码：{why}", "Not a valid identity number: {why}"),
    "invalid_phone": (
        "不是中国大陆手机号码（以 1 开头的 11 位数字）",
        "Not a mainland mobile number (11 digits starting with 1)",
    ),
    "invalid_time": (
        "应为带时区的 RFC 3339 时间（如 2026-11-27T08:00:00Z）",
        "Should be an RFC 3339 time with its offset (e.g. 2026-11-27T08:00:00Z)",
    ),
    "invalid_region_code": (
        "应为省级行政区的 6 位行政区划代码（GB/T 2260）",
        "Should be the 6-digit GB/T 2260 code of a province-level division",
    ),
    "green_required": ("必须包含绿码", "Must include green"),
    "invalid_period": ("结束时间不能早于开始时间", "`to` must not be before `from`"),
    "period_too_long": ("时间范围最长 14 天", "`from` and `to` are at most 14 days apart"),
    "invalid_window": ("时间窗口须为 1-240 分钟", "Should be 1 to 240 minutes"),
}
# What a validation message says when the table lacks its type: never Pydantic's English.
GENERIC_INVALID = ("取值无效", "Invalid value")

# Why an identity number is refused (hc_common.idnumber's reasons, the `why` of
# invalid_id_number).
ID_NUMBER_REASONS: Table = {
    "not a string": ("应为字符串", "not a string"),
    "18 characters, 17 digits and a check character": (
        "应为 18 位：17 位数字加 1 位校验码",
        "18 characters, 17 digits and a check character",
    ),
    "unknown province-level division": (
        "前两位不是省级行政区代码",
        "unknown province-level division",
    ),
    "not a real birth date": ("出生日期不存在", "not a real birth date"),
    "birth date out of range": ("出生日期超出范围", "birth date out of range"),
    "wrong check character": ("校验码错误", "wrong check character"),
}
# The messages of the services' own validators (ValueError in a model validator).
VALUE_ERRORS: Table = {
    "sample_time is in the future": ("采样时间晚于当前时间", "The sample time is in the future"),
    "report_time is before sample_time": (
        "报告时间早于采样时间",
        "The report time is before the sample time",
    ),
    "administered_at is in the future": (
        "接种时间晚于当前时间",
        "The administration time is in the future",
    ),
}

_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'")


class _Context(dict[str, str]):
    """A template's values; one the error did not give reads as nothing."""

    def __missing__(self, key: str) -> str:
        return ""


def _choices(expected: str) -> str:
    """Pydantic's `'a', 'b' or 'c'` as Chinese lists it: `a、b、c`."""
    found = _QUOTED.findall(expected)
    return "、".join(found) if found else expected


def validation_message(
    kind: str,
    ctx: Mapping[str, Any] | None = None,
    english: bool | None = None,
    *,
    fallback: str | None = None,
) -> str:
    """An error of type `kind` (Pydantic's, or one of the project's codes) in words, its `ctx`
    filled in. A type the table lacks reads as GENERIC_INVALID in Chinese, and as `fallback`
    (Pydantic's own message) or GENERIC_INVALID in English."""
    in_english = _english.get() if english is None else english
    pair = VALIDATION.get(kind)
    if pair is None:
        return (fallback or GENERIC_INVALID[1]) if in_english else GENERIC_INVALID[0]
    values = _Context({key: str(value) for key, value in (ctx or {}).items()})
    for key, value in (ctx or {}).items():  # "1 character", "2 characters"
        values[f"{key}_plural"] = "" if value == 1 else "s"
    if kind == "invalid_id_number":
        values["why"] = words(ID_NUMBER_REASONS, values["why"], in_english)
    elif kind == "value_error" and values["error"] in VALUE_ERRORS:
        return words(VALUE_ERRORS, values["error"], in_english)
    elif not in_english and "expected" in values:
        values["expected"] = _choices(values["expected"])
    return (pair[1] if in_english else pair[0]).format_map(values)


def field_label(
    loc: Sequence[str | int], english: bool | None = None, path: str = "", whole: str = "body"
) -> str:
    """An error's location in words: its last field name as FIELDS (or FIELDS_UNDER the
    request's `path`) says it, and which item of a list (`允许的码色（第 2 项）`). A name the
    tables lack is given as it is; no name at all is `whole` (the request body, a row)."""
    in_english = _english.get() if english is None else english
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    table = next((t for prefix, t in FIELDS_UNDER.items() if path.startswith(prefix)), {})
    # Each name with the list item after it; the last name that is a field of ours wins over
    # a union member's tag after it (`name.str`), else the last name (an unknown extra key).
    names: list[tuple[str, int | None]] = []
    for part in parts:
        if isinstance(part, int):
            if names:
                names[-1] = (names[-1][0], part)
        else:
            names.append((part, None))
    if not names:
        return words(FIELDS, whole, in_english)
    known = [n for n in names if n[0] in table or n[0] in FIELDS]
    name, item = (known or names)[-1]
    label = words(table if name in table else FIELDS, name, in_english)
    if item is None:
        return label
    return f"{label} (item {item + 1})" if in_english else f"{label}（第 {item + 1} 项）"


def field_error(label: str, message: str, english: bool | None = None) -> str:
    """One field's error as a detail says it: `身份证号码：……` / `ID number: ...`."""
    in_english = _english.get() if english is None else english
    return f"{label}: {message}" if in_english else f"{label}：{message}"


def join_errors(parts: Iterable[str], english: bool | None = None) -> str:
    in_english = _english.get() if english is None else english
    return ("; " if in_english else "；").join(parts)
