"""Checks portwatch's ECS and OCSF lines against the official definitions.

    check.py ocsf LINES            OCSF 1.8.0, from the ocsf-json-schema package's bundled export
    check.py ecs LINES FIELDS      ECS, from a field list: ecs_flat.yml of the ECS repository, or
                                   the JSON that `cargo xtask setup` makes from @elastic/ecs

LINES holds one JSON document per line. Each line is validated on its own; every problem is
printed as `line N: ...`, and the exit code is 1 if there was any. Beyond the schema, the checks
it cannot make: OCSF type_uid and the captions beside each id, the activity of each record
kind; ECS allowed values and the event types each category expects.
"""
import ipaddress
import json
import re
import sys

# portwatch record kind -> (OCSF class_uid, activity_id), as the README documents.
OCSF_ACTIVITY = {
    "bind": (4001, 99),
    "listen": (4001, 7),
    "listener": (4001, 7),
    "listener_stats": (4001, 6),
    "accept": (4001, 1),
    "close": (4001, 2),
    "exec": (1007, 1),
    "start": (1008, 6),
    "stop": (1008, 7),
    "loss": (1008, 99),
    "snapshot_complete": (1008, 99),
    "flood": (1008, 99),
}

# portwatch record kind -> (ECS event.kind values, event.action).
ECS_ACTION = {
    "bind": ({"event", "alert"}, "bind"),
    "listen": ({"event", "alert"}, "listen"),
    "listener": ({"state", "alert"}, "listener"),
    "listener_stats": ({"metric", "alert"}, "listener_stats"),
    "accept": ({"event", "alert"}, "connection_accepted"),
    "close": ({"event", "alert"}, "listener_closed"),
    "exec": ({"event", "alert"}, "exec_on_socket"),
    "start": ({"event"}, "portwatch_started"),
    "stop": ({"event"}, "portwatch_stopped"),
    "loss": ({"metric"}, "events_lost"),
    "snapshot_complete": ({"event"}, "snapshot_complete"),
    "flood": ({"event"}, "listener_flood"),
}


def ocsf_checker():
    from jsonschema import Draft202012Validator
    from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

    export = get_ocsf_schema(version="1.8.0")
    embedded = OcsfJsonSchemaEmbedded(export)
    classes = {c["uid"]: c for c in export["classes"].values()}
    validators = {}

    def enum_caption(attrs, name, value):
        enum = attrs.get(name, {}).get("enum", {})
        entry = enum.get(str(value))
        return entry and entry["caption"]

    def check(ev):
        errs = []
        cls = classes.get(ev.get("class_uid"))
        if cls is None:
            return [f"class_uid {ev.get('class_uid')!r} is not an OCSF 1.8.0 class"]
        profiles = tuple(ev.get("metadata", {}).get("profiles", []))
        key = (cls["name"], profiles)
        if key not in validators:
            schema = embedded.get_class_schema(class_name=cls["name"], profiles=list(profiles))
            validators[key] = Draft202012Validator(schema)
        for e in validators[key].iter_errors(ev):
            errs.append(f"{'/'.join(map(str, e.path)) or '(top)'}: {e.message[:300]}")
        attrs = cls["attributes"]
        act = ev.get("activity_id")
        if ev.get("type_uid") != cls["uid"] * 100 + (act or 0):
            errs.append(f"type_uid {ev.get('type_uid')} != class_uid * 100 + activity_id")
        act_caption = enum_caption(attrs, "activity_id", act)
        if ev.get("type_name") != f"{cls['caption']}: {act_caption}":
            errs.append(f"type_name {ev.get('type_name')!r}: the caption is {cls['caption']}: {act_caption}")
        if act != 99 and ev.get("activity_name") != act_caption:
            errs.append(f"activity_name {ev.get('activity_name')!r} is not {act_caption!r}")
        if act == 99 and ev.get("activity_name") in (None, "Other"):
            errs.append("activity 99 needs portwatch's own activity_name")
        if ev.get("class_name") != cls["caption"]:
            errs.append(f"class_name {ev.get('class_name')!r} is not {cls['caption']!r}")
        if ev.get("category_uid") != cls["category_uid"] or ev.get("category_name") != cls["category_name"]:
            errs.append("category_uid/category_name do not match the class")
        for id_name, name in [("severity_id", "severity"), ("status_id", "status")]:
            if id_name in ev and ev.get(name) != enum_caption(attrs, id_name, ev[id_name]):
                errs.append(f"{name} {ev.get(name)!r} is not the caption of {id_name} {ev[id_name]}")
        if ev.get("metadata", {}).get("version") != "1.8.0":
            errs.append("metadata.version is not 1.8.0")
        kind = ev.get("metadata", {}).get("event_code")
        if OCSF_ACTIVITY.get(kind) != (ev.get("class_uid"), act):
            errs.append(f"record {kind!r} has class/activity {(ev.get('class_uid'), act)}, documented {OCSF_ACTIVITY.get(kind)}")
        if ("container" in profiles) != ("container" in ev.get("actor", {}).get("process", {})):
            errs.append("the container profile is named exactly when a container is")
        return errs

    return check


DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
STRINGS = ("keyword", "constant_keyword", "wildcard", "match_only_text", "text")
INTEGERS = ("long", "integer", "short", "byte", "unsigned_long")


def load_ecs_fields(path):
    if path.endswith((".yml", ".yaml")):
        import yaml

        with open(path) as f:
            return yaml.safe_load(f)
    with open(path) as f:
        return json.load(f)


def ecs_checker(fields_path):
    fields = load_ecs_fields(fields_path)
    containers = {n for n, f in fields.items() if f["type"] in ("object", "flattened", "nested")}
    expected = {
        a["name"]: set(a.get("expected_event_types") or [])
        for a in fields["event.category"]["allowed_values"]
    }

    def value_problem(name, t, x):
        if t == "ip":
            try:
                ipaddress.ip_address(x)
            except (ValueError, TypeError):
                return f"{x!r} is not an IP address"
        elif t in INTEGERS:
            if not isinstance(x, int) or isinstance(x, bool) or (t == "unsigned_long" and x < 0):
                return f"{x!r} is not an integer"
        elif t in ("float", "double", "scaled_float", "half_float"):
            if not isinstance(x, (int, float)) or isinstance(x, bool):
                return f"{x!r} is not a number"
        elif t == "date":
            if not (isinstance(x, str) and DATE.match(x)):
                return f"{x!r} is not an ISO 8601 date"
        elif t == "boolean":
            if not isinstance(x, bool):
                return f"{x!r} is not a boolean"
        elif t in STRINGS:
            if not isinstance(x, str):
                return f"{x!r} is not a string (ECS type {t})"
        return None

    def walk(obj, prefix, errs):
        for key, v in obj.items():
            name = prefix + key
            if name == "portwatch" or name.startswith("portwatch."):
                continue  # portwatch's custom fields
            if name in containers:
                if not isinstance(v, dict):
                    errs.append(f"{name}: ECS type {fields[name]['type']} wants an object")
                continue
            if isinstance(v, dict):
                walk(v, name + ".", errs)
                continue
            f = fields.get(name)
            if f is None:
                errs.append(f"{name}: not an ECS field")
                continue
            arrays = "array" in (f.get("normalize") or [])
            if isinstance(v, list) != arrays:
                errs.append(f"{name}: {'must' if arrays else 'must not'} be an array")
            for x in v if isinstance(v, list) else [v]:
                problem = value_problem(name, f["type"], x)
                if problem:
                    errs.append(f"{name}: {problem}")
                allowed = f.get("allowed_values")
                if allowed and x not in {a["name"] for a in allowed}:
                    errs.append(f"{name}: {x!r} is not an allowed value")

    def check(doc):
        errs = []
        walk(doc, "", errs)
        for required in ("@timestamp", "ecs", "event"):
            if required not in doc:
                errs.append(f"{required} is missing")
        ev = doc.get("event", {})
        for c in ev.get("category", []):
            for t in ev.get("type", []):
                if t not in expected.get(c, set()):
                    errs.append(f"event.type {t!r} is not expected for event.category {c!r}")
        kind = doc.get("portwatch", {}).get("record")
        kinds, action = ECS_ACTION.get(kind, (set(), None))
        if ev.get("kind") not in kinds or ev.get("action") != action:
            errs.append(f"record {kind!r}: event.kind {ev.get('kind')!r}, action {ev.get('action')!r}")
        if not isinstance(ev.get("sequence"), int):
            errs.append("event.sequence is missing")
        return errs

    return check


def main():
    fmt, lines_path = sys.argv[1], sys.argv[2]
    check = ocsf_checker() if fmt == "ocsf" else ecs_checker(sys.argv[3])
    problems = 0
    count = 0
    with open(lines_path) as f:
        for n, line in enumerate(f, 1):
            count += 1
            try:
                doc = json.loads(line)
            except json.JSONDecodeError as e:
                print(f"line {n}: not JSON: {e}")
                problems += 1
                continue
            for err in check(doc):
                print(f"line {n}: {err}")
                problems += 1
    print(f"{fmt}: {count} lines, {problems} problems")
    sys.exit(1 if problems or count == 0 else 0)


if __name__ == "__main__":
    main()
