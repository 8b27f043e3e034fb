"""Location by value (RFC 6442): a PIDF-LO body and the INVITE changes that carry it.

The PIDF-LO follows RFC 4119 with the RFC 5139 civic address and the RFC 5491 profile (a
`dm:device` tuple, `gp:method` Manual for a registered address). The INVITE gets a
`Geolocation` header naming the body part by Content-ID, `Geolocation-Routing: yes` (the
location may be used to route), and a multipart/mixed body holding the original SDP and
the PIDF-LO. The callback number goes in P-Asserted-Identity.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

from e911_router.address import Address

NS_PIDF = "urn:ietf:params:xml:ns:pidf"
NS_GP = "urn:ietf:params:xml:ns:pidf:geopriv10"
NS_CA = "urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr"
NS_DM = "urn:ietf:params:xml:ns:pidf:data-model"
for _prefix, _uri in (("", NS_PIDF), ("gp", NS_GP), ("ca", NS_CA), ("dm", NS_DM)):
    ET.register_namespace(_prefix, _uri)


def civic_elements(a: Address) -> list[tuple[str, str]]:
    """RFC 5139 elements in schema order, for the fields the address has."""
    county = a.county.upper().removesuffix(" COUNTY") if a.county else None
    pairs = [("country", "US"), ("A1", a.state), ("A2", county), ("A3", a.city),
             ("PRD", a.pre_directional), ("RD", a.street_name), ("STS", a.street_suffix),
             ("POD", a.post_directional), ("HNO", a.house_number), ("FLR", a.floor),
             ("UNIT", a.unit), ("ROOM", a.room), ("PC", a.zip[:5])]  # fmt: skip
    return [(k, v) for k, v in pairs if v]


def pidf_lo(tn: str, a: Address, at: datetime | None = None) -> bytes:
    presence = ET.Element(f"{{{NS_PIDF}}}presence", {"entity": f"pres:{tn}@sipcc"})
    device = ET.SubElement(presence, f"{{{NS_DM}}}device", {"id": "sipcc-e911"})
    geopriv = ET.SubElement(device, f"{{{NS_GP}}}geopriv")
    info = ET.SubElement(geopriv, f"{{{NS_GP}}}location-info")
    civic = ET.SubElement(info, f"{{{NS_CA}}}civicAddress",
                          {"{http://www.w3.org/XML/1998/namespace}lang": "en-US"})  # fmt: skip
    for name, value in civic_elements(a):
        ET.SubElement(civic, f"{{{NS_CA}}}{name}").text = value
    rules = ET.SubElement(geopriv, f"{{{NS_GP}}}usage-rules")
    ET.SubElement(rules, f"{{{NS_GP}}}retransmission-allowed").text = "true"
    ET.SubElement(geopriv, f"{{{NS_GP}}}method").text = "Manual"
    ET.SubElement(device, f"{{{NS_DM}}}deviceID").text = f"tel:{tn}"
    stamp = (at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ET.SubElement(device, f"{{{NS_DM}}}timestamp").text = stamp
    return ET.tostring(presence, encoding="utf-8", xml_declaration=True)


def with_location(content_type: str | None, sdp: bytes, tn: str, a: Address,
                  host: str, call_id: str) -> tuple[str, bytes, str]:  # fmt: skip
    """(Content-Type, body, Geolocation value) of an INVITE carrying its SDP and the
    caller's location (RFC 6442 §3, RFC 5621 multipart)."""
    tag = hashlib.blake2b(call_id.encode(), digest_size=6).hexdigest()
    cid = f"loc-{tag}@{host}"
    boundary = f"sipcc-{tag}"
    parts = []
    if sdp:
        parts.append(f"Content-Type: {content_type or 'application/sdp'}\r\n\r\n".encode() + sdp)
    parts.append(
        f"Content-Type: application/pidf+xml\r\nContent-ID: <{cid}>\r\n\r\n".encode()
        + pidf_lo(tn, a)
    )
    body = b"".join(f"--{boundary}\r\n".encode() + p + b"\r\n" for p in parts)
    body += f"--{boundary}--\r\n".encode()
    return f"multipart/mixed;boundary={boundary}", body, f"<cid:{cid}>"
