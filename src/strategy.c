/*-------------------------------------------------------------------------
 *
 * strategy.c
 *	  The table of strategies.
 *
 * Each strategy lives in its own file (strategy_<name>.c) and exports one
 * IncetlStrategyRoutine (strategy.h).  Adding one is one line here.
 *
 * src/strategy.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"

#include "strategy.h"

static const IncetlStrategyRoutine *const strategies[] = {
	&incetl_timestamp_strategy,
	&incetl_hash_strategy,
	&incetl_trigger_strategy,
	&incetl_logical_strategy,
};

/* the strategy of that name; an error naming the valid ones if none */
const IncetlStrategyRoutine *
incetl_strategy_by_name(const char *name)
{
	StringInfoData valid;

	for (int i = 0; i < lengthof(strategies); i++)
		if (strcmp(strategies[i]->name, name) == 0)
			return strategies[i];

	initStringInfo(&valid);
	for (int i = 0; i < lengthof(strategies); i++)
		appendStringInfo(&valid, "%s'%s'", i == 0 ? "" :
						 i == lengthof(strategies) - 1 ? " and " : ", ",
						 strategies[i]->name);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown strategy \"%s\"", name),
			 errhint("Valid strategies are %s.", valid.data)));
	return NULL;				/* keep compiler quiet */
}

/* a pipeline's strategy, looked up once */
const IncetlStrategyRoutine *
incetl_strategy(IncetlPipeline *p)
{
	if (p->strategy == NULL)
		p->strategy = incetl_strategy_by_name(p->strategy_name);
	return p->strategy;
}

/*
 * Load a pipeline with its strategy, for a caller that must own it (the
 * owner, a member of the owning role, or a superuser).
 */
IncetlPipeline *
incetl_load_owned_pipeline(const char *name)
{
	IncetlPipeline *p = incetl_load_pipeline(name, false);

	(void) incetl_strategy(p);
	incetl_check_owner(p);
	return p;
}
