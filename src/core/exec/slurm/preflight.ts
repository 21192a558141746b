import { UserError } from '../../errors.ts';
import type { Pool } from '../../plan/stages.ts';
import { SlurmUnavailable, SubmissionRejected, type SlurmClient } from './client.ts';
import type { SlurmConfig, SlurmOption } from './config.ts';
import { rejectionMessage } from './rejection.ts';
import { resourceOptions } from './submission.ts';

/**
 * Asks sbatch (`--test-only`: nothing is submitted) whether it would take
 * the jobs of each pool, so a wrong partition, account or size is one
 * sentence before anything runs rather than a failure per task. Also where a
 * missing sbatch shows first.
 */
export async function preflight(client: SlurmClient, config: SlurmConfig, pools: Iterable<Pool>, where: (option: SlurmOption) => string): Promise<void> {
  for (const pool of new Set(pools)) {
    try {
      await client.check([...resourceOptions(config, pool), '--job-name=salgrid:check', '--output=/dev/null'], '#!/bin/sh\ntrue\n');
    } catch (error) {
      if (error instanceof SubmissionRejected) throw new UserError(rejectionMessage(error.stderr, config, where));
      if (error instanceof SlurmUnavailable) throw new UserError(`Slurm does not answer (${error.message}); check its controller with \`scontrol ping\` and run again.`);
      throw error;
    }
  }
}
