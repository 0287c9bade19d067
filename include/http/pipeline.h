/* pipeline: a request's way from its complete body to its answer (see
 * src/http/pipeline.c): parse, route (with the classifier when asked),
 * sample, admit against budgets, then the cache and the providers. */
#ifndef LLMROUTER_PIPELINE_H
#define LLMROUTER_PIPELINE_H

#include "http/request.h"

/* The body of req is complete (or was too large): answers it or sets it on
 * its way. Called once per request by the access handler, on its shard. */
void pipeline_body_complete(req_t *req);

#endif
