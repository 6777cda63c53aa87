/* Fuzzes the email writer: mime_addr_spec on the first piece, and
 * mime_build on a message whose fields are the input's NUL-separated
 * pieces (from, to name, to address, subject, text, HTML, unsubscribe URL,
 * attachment filename, attachment content type, then the attachment's
 * bytes). A message that builds must keep the wire rules mime.h promises:
 * 7-bit, no NUL, CR only before LF, LF only after CR, no line over 998
 * bytes, and no header line that did not come from the writer (every
 * header line is a "Name:" or a folded continuation). */
#include "channel/mime.h"
#include "fuzz_input.h"
#include "util/buf.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_PIECES 9

static void wire_check(const buf_t *b)
{
    size_t col = 0, line_start = 0;
    int in_headers = 1;
    for (size_t i = 0; i < b->len; i++) {
        unsigned char c = (unsigned char)b->data[i];
        if (c == 0 || c >= 0x80)
            abort();
        if (c == '\r' && (i + 1 >= b->len || b->data[i + 1] != '\n'))
            abort();
        if (c == '\n') {
            if (i == 0 || b->data[i - 1] != '\r')
                abort();
            if (in_headers) {
                size_t n = i - 1 - line_start; /* without CRLF */
                const char *l = b->data + line_start;
                if (n == 0) {
                    in_headers = 0;
                } else if (l[0] != ' ' && l[0] != '\t') {
                    const char *colon = memchr(l, ':', n);
                    if (!colon || colon == l)
                        abort();
                    for (const char *p = l; p < colon; p++)
                        if (*p <= ' ' || *p >= 0x7f)
                            abort();
                }
            }
            col = 0;
            line_start = i + 1;
            continue;
        }
        if (c != '\r' && ++col > 998)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_INPUT)
        return 0;
    const uint8_t *rest = data;
    size_t left = size;
    char *piece[N_PIECES] = {0};
    int ok = 1;
    for (int i = 0; i < N_PIECES; i++) {
        piece[i] = fuzz_next(&rest, &left);
        if (!piece[i])
            ok = 0;
    }
    if (ok) {
        char addr[512];
        (void)mime_addr_spec(piece[0], addr, sizeof addr);
        (void)mime_addr_spec(piece[0], addr, 8);

        mime_attachment_t att = {
            .filename = piece[7],
            .content_type = piece[8][0] ? piece[8] : "application/pdf",
            .data = rest,
            .len = left,
        };
        mime_message_t m = {
            .from = piece[0],
            .to_name = piece[1][0] ? piece[1] : NULL,
            .to_addr = piece[2],
            .subject = piece[3],
            .text = piece[4],
            .html = piece[5],
            .list_unsubscribe_url = piece[6][0] ? piece[6] : NULL,
            .list_unsubscribe_mailto = piece[6][0] ? "mailto:unsubscribe@mail.crier.test" : NULL,
            .attachments = piece[7][0] ? &att : NULL,
            .n_attachments = piece[7][0] ? 1 : 0,
            .entity_id = "0b9f3c1e-6a53-4d8e-9a43-1f2e3d4c5b6a",
            .date = 1767225600,
        };
        buf_t out;
        buf_init(&out, 4u << 20);
        char msgid[256], err[256];
        if (mime_build(&m, &out, msgid, sizeof msgid, err, sizeof err) == 0)
            wire_check(&out);
        buf_free(&out);
    }
    for (int i = 0; i < N_PIECES; i++)
        free(piece[i]);
    return 0;
}
