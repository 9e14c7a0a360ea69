/*-------------------------------------------------------------------------
 *
 * engine.h
 *	  The apply engine (engine.c), for the procedures that start runs
 *	  (run.c).
 *
 * src/engine.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef INCETL_ENGINE_H
#define INCETL_ENGINE_H

#include "strategy.h"

extern ErrorData *incetl_run_pipeline(const char *name, bool nonatomic,
									  IncetlRunKind kind, const IncetlRun *args,
									  MemoryContext cxt);

extern int	incetl_begin_batch_settings(IncetlPipeline *p, bool keyed);
extern void incetl_end_batch_settings(int nest);

#endif							/* INCETL_ENGINE_H */
