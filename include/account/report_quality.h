/* report_quality: `llmrouter report --samples SAMPLES...` — the judged
 * quality of the samples files (observability.sample_file, one or several,
 * e.g. one per instance: they merge): per tier, model and rule the number of
 * judged samples and their mean score, the unjudged samples, the judge's
 * errors and spend. A table, or JSON with --json. An offline CLI tool: main
 * thread only. */
#ifndef LLMROUTER_REPORT_QUALITY_H
#define LLMROUTER_REPORT_QUALITY_H

/* Whether argv asks for the samples report (has --samples). */
int report_quality_wanted(int argc, char **argv);
/* Runs it; returns the exit status (0, 1 unreadable file, 2 usage). */
int report_quality_main(int argc, char **argv);

#endif
