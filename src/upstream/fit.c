/* fit: can a model serve a request (see include/upstream/fit.h). */
#include "upstream/fit.h"

#include <stdio.h>
#include <string.h>

#include "core/catalog.h"
#include "core/log.h"
#include "upstream/cascade.h"
#include "upstream/chain.h"

unsigned fit_needs(bool tools, bool images, bool audio, const char *response_format)
{
    unsigned n = 0;
    if (tools)
        n |= CAP_TOOLS;
    if (images)
        n |= CAP_VISION;
    if (audio)
        n |= CAP_AUDIO;
    if (response_format != NULL && strcmp(response_format, "json_schema") == 0)
        n |= CAP_JSON_SCHEMA;
    return n;
}

static const char *what_needs(unsigned bit)
{
    switch (bit) {
    case CAP_TOOLS:
        return "the request has tools";
    case CAP_VISION:
        return "the request has images";
    case CAP_AUDIO:
        return "the request has audio";
    case CAP_JSON_SCHEMA:
        return "the request asks for a JSON schema response_format";
    default:
        return "the request needs it";
    }
}

bool fit_check(const req_t *req, const cfg_model_t *m, char *why, size_t n)
{
    unsigned missing;
    if (req->ep != EP_CHAT && req->ep != EP_COMPLETIONS)
        return true; /* embeddings: no output, no capabilities */
    if (m->context_window > 0) {
        uint64_t out = req->max_output >= 0 ? (uint64_t)req->max_output : FIT_DEFAULT_OUTPUT_TOKENS;
        uint64_t need = (uint64_t)req->est_prompt_tokens + out;
        if (need > m->context_window) {
            snprintf(why, n, "context_window (about %llu prompt + %llu output tokens, %u allowed)",
                     (unsigned long long)req->est_prompt_tokens, (unsigned long long)out,
                     m->context_window);
            return false;
        }
    }
    if (m->max_output_tokens > 0 && req->max_output > (int64_t)m->max_output_tokens) {
        snprintf(why, n, "max_output_tokens (%lld asked, %u allowed)", (long long)req->max_output,
                 m->max_output_tokens);
        return false;
    }
    missing = m->caps_set ? req->needs & ~m->caps : 0;
    if (missing != 0) {
        unsigned bit = missing & -missing; /* the first one */
        const char *name = catalog_cap_name(bit);
        snprintf(why, n, "no_%s (%s)", strcmp(name, "json_schema") == 0 ? "json_schema" : name,
                 what_needs(bit));
        return false;
    }
    return true;
}

bool fit_skip(req_t *req, int m)
{
    char why[112] = "skipped: ";
    if (fit_check(req, &req->cfg->models[m], why + 9, sizeof why - 9))
        return false;
    upstream_record(req, m, 0, why);
    req->fit_skips++;
    if (req->casc != NULL)
        cascade_add_step(req->casc, m, CASCADE_FAILED, CASCADE_OK, 0);
    return true;
}

bool fit_unservable(req_t *req)
{
    req_error_t err = {.status = 400, .type = "invalid_request_error",
                       .code = "no_model_can_serve"};
    const char *first;
    if (req->fit_skips == 0 || req->fit_skips != req->n_attempts)
        return false;
    /* the first model's reason names what was missing; every model's is
     * in the attempts */
    first = req->attempts[0].error + 9;
    if (strncmp(first, "context_window", 14) == 0 || strncmp(first, "max_output_tokens", 17) == 0)
        err.param = "messages";
    else if (strncmp(first, "no_tools", 8) == 0)
        err.param = "tools";
    else if (strncmp(first, "no_json_schema", 14) == 0)
        err.param = "response_format";
    else
        err.param = "messages";
    upstream_chain_refuse(req, &err, "No model of the chain can serve this request:");
    return true;
}
