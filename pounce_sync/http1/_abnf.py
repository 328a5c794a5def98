"""RFC 9110 / 9112 grammar as compiled byte regexes, in one place."""

import re

# token = 1*tchar
TCHARS = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
TCHAR = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
TOKEN = TCHAR + rb"+"

# request-line = method SP request-target SP HTTP-version
# The target is checked for forbidden bytes here and for its form in the parser.
REQUEST_LINE = re.compile(rb"(" + TOKEN + rb") ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])")

# field-line = field-name ":" OWS field-value OWS
# field-value bytes: HTAB, SP, VCHAR, obs-text.  No CR, LF, NUL or other CTL.
FIELD_LINE = re.compile(rb"(" + TOKEN + rb"):[ \t]*([\t\x20-\x7e\x80-\xff]*?)[ \t]*")
# The bytes a field line may hold (HTAB, SP, VCHAR, obs-text), for bytes.translate.
FIELD_LINE_BYTES = bytes([0x09, *range(0x20, 0x7F), *range(0x80, 0x100)])

# chunk-size [ chunk-ext ]; extensions are validated, then ignored.
CHUNK_EXT = (
    rb"(?:[ \t]*;[ \t]*"
    + TOKEN
    + rb"(?:[ \t]*=[ \t]*(?:"
    + TOKEN
    + rb'|"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"))?)*'
)
CHUNK_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})" + CHUNK_EXT)

# Host = uri-host [ ":" port ]; uri-host is an IP-literal or a reg-name (RFC 3986).
HOST = re.compile(rb"(?:\[[0-9A-Fa-f:.vV]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?")

DIGITS = re.compile(rb"[0-9]{1,18}")
BARE_LF = re.compile(rb"(?<!\r)\n")

# origin-form = absolute-path [ "?" query ], as HTTP/2's :path must be (RFC 9113 8.3.1).
ORIGIN_FORM = re.compile(rb"/[\x21-\x7e]*")
