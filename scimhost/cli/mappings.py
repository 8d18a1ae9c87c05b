"""`scimhost mappings test|variables`: property mappings tried on a document."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from scimhost.cli.common import EXIT_FAILED, EXIT_OK, config_of, source_and_type
from scimhost.host import Host, load_host
from scimhost.mapping.runtime import MappingError
from scimhost.mapping.service import MappingFailed
from scimhost.scim.errors import ScimError
from scimhost.scim.validation import validated_document


def cmd_mappings_test(args: argparse.Namespace) -> int:
    host = load_host(config_of(args), strict=False)
    source, resource_type = source_and_type(host, args.slug, args.resource_type)
    text = sys.stdin.read() if args.input == "-" else Path(args.input).read_text()
    try:
        document = validated_document(
            json.loads(text), resource_type, keep_unknown=source.settings.unknown_attributes == "keep"
        )
    except ValueError as exc:
        print(f"error: the input is not JSON: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except ScimError as exc:
        print(f"error: the input is not a valid {resource_type.name}: {exc.detail}", file=sys.stderr)
        return EXIT_FAILED
    document.pop("password", None)
    expressions = None
    if args.expression is not None:
        try:
            host.mappings.runtime_of(source.slug).compile(args.expression, label="--expression")
        except MappingError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        expressions = [("--expression", args.expression)]
    try:
        record = asyncio.run(_evaluate(host, source, resource_type.name, document, expressions))
    except MappingFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(record) if args.json else json.dumps(record, indent=2))
    return EXIT_OK


async def _evaluate(host: Host, source, resource_type: str, document: dict, expressions):
    # The same pool and limits as the server (unless the config says inline).
    await host.mappings.start_for(source.slug)
    try:
        return await host.mappings.record(source, resource_type, document, expressions=expressions)
    finally:
        await host.mappings.close()


def cmd_mappings_variables(args: argparse.Namespace) -> int:
    host = load_host(config_of(args), strict=False)
    source, resource_type = source_and_type(host, args.slug, args.resource_type)
    document = None
    if args.input is not None:
        text = sys.stdin.read() if args.input == "-" else Path(args.input).read_text()
        try:
            document = json.loads(text)
        except ValueError as exc:
            print(f"error: the input is not JSON: {exc}", file=sys.stderr)
            return EXIT_FAILED
        if not isinstance(document, dict):
            print("error: the input must be a JSON object (a SCIM document)", file=sys.stderr)
            return EXIT_FAILED
    print("data            the whole document")
    print("source          {'slug': ..., 'name': ...} of the source")
    print("resource_type   'User' or 'Group'")
    for variable in host.mappings.variables(source.slug, resource_type, document):
        if variable.bound:
            print(f"{variable.name:<15} {variable.key}")
        else:
            print(f"(unbound)       {variable.key}: {variable.unbound_because}")
    return EXIT_OK
