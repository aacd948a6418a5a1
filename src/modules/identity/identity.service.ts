import type { AuthConfig } from '../../config.ts';
import type { Logger } from '../../logger.ts';
import type { Db } from '../../store/connect.ts';
import type { JwtCodec } from '../tokens/jwt.ts';
import { userIdOfIdentity } from './identities.repo.ts';
import { IdentityVerifier } from './verifier.ts';

/** AUTH_MODE=jwt sign-in: an identity provider's token in, the service's own user id out. */
export class IdentityService {
  readonly verifier: IdentityVerifier;

  constructor(private readonly db: Db, auth: Extract<AuthConfig, { mode: 'jwt' }>, own: JwtCodec, clock: () => number, log: Logger) {
    this.verifier = new IdentityVerifier(auth, own, clock, log);
  }

  /** Verifies the token (401 naming why; 503 when the provider's keys cannot be fetched) and maps (iss, sub) to a user. */
  async userIdFor(idToken: string, now: number): Promise<number> {
    const { iss, sub } = await this.verifier.verify(idToken, now);
    return userIdOfIdentity(this.db, iss, sub, now);
  }
}
