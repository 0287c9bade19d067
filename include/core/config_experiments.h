/* config_experiments: the `experiments:` section of llmrouter.yaml
 * (src/core/config_experiments.c), parsed into route/experiment.h's
 * experiments_t. Called by config.c after the routing section (arms refer
 * to rules and tiers); records every problem in c with its position. */
#ifndef LLMROUTER_CORE_CONFIG_EXPERIMENTS_H
#define LLMROUTER_CORE_CONFIG_EXPERIMENTS_H

#include <yaml.h>

#include "core/config.h"
#include "core/yamlwalk.h"

struct experiments;

/* Parses n (a list or a mapping of experiments). Returns a set (possibly
 * empty; caller frees with experiments_free), also after errors. */
struct experiments *config_parse_experiments(ywalk_t *c, const config_t *cfg, yaml_node_t *n);

/* For --check-config: one line per experiment (the active one's arms and
 * shares). f is a FILE *. */
void config_print_experiments(const config_t *cfg, void *f);

#endif
