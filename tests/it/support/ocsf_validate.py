#!/usr/bin/env python3
"""Validates OCSF events (one JSON object per line) against the official OCSF 1.3.0 schema
shipped by PyPI's `pydantic-ocsf` (offline).

pydantic-ocsf checks each class's required attributes, object types and enums, but it leaves out
the attributes the schema pulls in with `$include` (classification, occurrence, the cloud and
host profiles) and accepts unknown keys. This script adds those checks from the same schema
file: `class_uid`/`category_uid`/`activity_id`/`type_uid`/`time`/`severity_id` present and
consistent, sibling captions matching their ids, `metadata.version`, the `cloud` object, and no
attribute that the class (or, nested, the object) does not define.

Exit codes: 0 valid, 1 invalid (errors on stderr), 3 pydantic-ocsf is not installed.
"""
import json
import sys
import typing

try:
    import pydantic
    from ocsf.v1_3_0 import events as E, objects as O
except ImportError as e:  # the Rust test prints this and skips
    print(f"pydantic-ocsf not importable: {e}", file=sys.stderr)
    sys.exit(3)

CLASSES = {
    2004: E.DetectionFinding,
    3001: E.AccountChange,
    3002: E.Authentication,
    3004: E.EntityManagement,
    3005: E.UserAccess,
    6003: E.ApiActivity,
}
# Attributes every class gets through `$include` in OCSF 1.3.0 (classification, occurrence,
# the cloud profile, the host profile of the IAM classes).
INCLUDED = {
    "activity_id", "activity_name", "category_uid", "category_name", "class_uid", "class_name",
    "type_uid", "type_name", "time", "start_time", "end_time", "count", "duration",
    "timezone_offset", "cloud", "api", "actor", "device",
}
SEVERITY = {0: "Unknown", 1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical",
            6: "Fatal", 99: "Other"}
STATUS = {0: "Unknown", 1: "Success", 2: "Failure", 99: "Other"}
FINDING_STATUS = {0: "Unknown", 1: "New", 2: "In Progress", 3: "Suppressed", 4: "Resolved",
                  99: "Other"}
CATEGORY = {2: "Findings", 3: "Identity & Access Management", 6: "Application Activity"}
FREE_FORM = {"unmapped", "data", "raw_data"}


def model_of(annotation):
    """The pydantic model inside `annotation` (Model, Model | None, list[Model]), if any."""
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        m = model_of(arg)
        if m is not None:
            return m
    return None


def fields_by_key(model):
    return {(f.alias or name): f for name, f in model.model_fields.items()}


def unknown_keys(value, model, path, errors):
    if isinstance(value, list):
        for i, item in enumerate(value):
            unknown_keys(item, model, f"{path}[{i}]", errors)
        return
    if not isinstance(value, dict):
        return
    fields = fields_by_key(model)
    for key, item in value.items():
        if key in FREE_FORM:
            continue
        if key not in fields:
            errors.append(f"{path}.{key}: not an attribute of {model.__name__}")
            continue
        inner = model_of(fields[key].annotation)
        if inner is not None:
            unknown_keys(item, inner, f"{path}.{key}", errors)


def check(event):
    errors = []
    cls_uid = event.get("class_uid")
    model = CLASSES.get(cls_uid)
    if model is None:
        return [f"class_uid {cls_uid!r} is not one this exporter emits"]
    for key in ("class_uid", "category_uid", "activity_id", "type_uid", "time", "severity_id"):
        if not isinstance(event.get(key), int) or isinstance(event.get(key), bool):
            errors.append(f"{key}: required integer, got {event.get(key)!r}")
    if errors:
        return errors
    if event["category_uid"] != cls_uid // 1000:
        errors.append(f"category_uid {event['category_uid']} != {cls_uid // 1000}")
    if event["type_uid"] != cls_uid * 100 + event["activity_id"]:
        errors.append(f"type_uid {event['type_uid']} != class_uid*100+activity_id")
    if event.get("category_name") not in (None, CATEGORY.get(event["category_uid"])):
        errors.append(f"category_name {event.get('category_name')!r}")
    if event.get("severity") not in (None, SEVERITY.get(event["severity_id"])):
        errors.append(f"severity {event.get('severity')!r} != caption of {event['severity_id']}")
    statuses = FINDING_STATUS if cls_uid == 2004 else STATUS
    if "status_id" in event and event.get("status") not in (None, statuses.get(event["status_id"])):
        errors.append(f"status {event.get('status')!r} != caption of {event['status_id']}")
    if event.get("metadata", {}).get("version") != "1.3.0":
        errors.append("metadata.version must be 1.3.0")
    activity_ids = model.model_fields["activity_id"].annotation
    enum = next((a for a in typing.get_args(activity_ids) if isinstance(a, type)), activity_ids)
    allowed = {m.value for m in enum} | {0, 99}
    if event["activity_id"] not in allowed:
        errors.append(f"activity_id {event['activity_id']} not in {sorted(allowed)}")
    try:
        model.model_validate(event)
    except pydantic.ValidationError as e:
        errors.append(f"{model.__name__}: {e}")
    if "cloud" in event:
        try:
            O.Cloud.model_validate(event["cloud"])
        except pydantic.ValidationError as e:
            errors.append(f"cloud: {e}")
        unknown_keys(event["cloud"], O.Cloud, "cloud", errors)
    for key, value in event.items():
        if key in FREE_FORM or key == "cloud":
            continue
        fields = fields_by_key(model)
        if key in fields:
            inner = model_of(fields[key].annotation)
            if inner is not None:
                unknown_keys(value, inner, key, errors)
        elif key not in INCLUDED:
            errors.append(f"{key}: not an attribute of {model.__name__} (1.3.0)")
    if "actor" in event and "actor" not in model.model_fields:
        # Only through the host profile (IAM classes), which the event must then declare.
        if "host" not in event.get("metadata", {}).get("profiles", []):
            errors.append(f"actor on {model.__name__} needs metadata.profiles to list 'host'")
        unknown_keys(event["actor"], O.Actor, "actor", errors)
    return errors


def main():
    failed = 0
    count = 0
    with open(sys.argv[1], encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            count += 1
            event = json.loads(line)
            errors = check(event)
            if errors:
                failed += 1
                print(f"line {n} ({event.get('metadata', {}).get('uid')}):", file=sys.stderr)
                for e in errors:
                    print(f"  {e}", file=sys.stderr)
    print(f"{count} OCSF events checked, {failed} invalid")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
