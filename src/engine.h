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

#endif							/* INCETL_ENGINE_H */
