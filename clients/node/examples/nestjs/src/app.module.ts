// A NestJS app caching through @nestjs/cache-manager on a Keyv store over sharecache, with
// the seeds' auth flow: login attempts rate-limited per email, sessions, a cached profile.
import "reflect-metadata";
import {
  Body, Controller, Get, HttpCode, HttpException, Inject, Injectable, Module, Param, Post, Put, Headers,
  UseInterceptors, type DynamicModule,
} from "@nestjs/common";
import { CACHE_MANAGER, CacheInterceptor, CacheModule, CacheTTL } from "@nestjs/cache-manager";
import type { Cache } from "cache-manager";
import { Keyv } from "keyv";
import { Sharecache } from "@sharecache/client";
import { KeyvSharecache } from "@sharecache/keyv";

export const SHARECACHE = Symbol("SHARECACHE");
export const USERS = Symbol("USERS");

/** The service's record of users (a database in a real service; shared by every instance). */
export interface UserRecord {
  id: string;
  email: string;
  password: string;
  name: string;
}
export type UsersDb = Map<string, UserRecord>;

@Injectable()
export class AuthService {
  constructor(@Inject(SHARECACHE) private readonly sc: Sharecache, @Inject(USERS) private readonly users: UsersDb) {}

  private get auth() {
    return this.sc.ns("auth");
  }

  /** At most 5 attempts per email per minute; a success resets the budget and opens a session. */
  async login(email: string, password: string) {
    const key = `attempts:${email}`;
    const d = await this.auth.rateLimits().check(key, { limit: 5, periodMs: 60_000 });
    if (!d.allowed) throw new HttpException({ error: "too many attempts", retry_after_ms: d.retry_after_ms }, 429);
    const user = [...this.users.values()].find((u) => u.email === email && u.password === password);
    if (!user) throw new HttpException({ error: "invalid credentials", remaining: d.remaining }, 401);
    await this.auth.rateLimits().reset(key);
    const s = await this.auth.sessions().create({ userId: user.id }, { user: user.id, idleTtlMs: 30 * 60_000 });
    return { session: s.id, expires_at: s.expires_at };
  }

  async whoami(sessionId: string | undefined) {
    const s = sessionId ? await this.auth.sessions().get<{ userId: string }>(sessionId) : undefined;
    if (!s) throw new HttpException({ error: "no session" }, 401);
    return s.data.userId;
  }

  async logout(sessionId: string) {
    await this.auth.sessions().end(sessionId);
  }
}

@Controller()
export class AuthController {
  constructor(private readonly auth: AuthService) {}

  @Post("login")
  @HttpCode(200)
  login(@Body() b: { email: string; password: string }) {
    return this.auth.login(b.email, b.password);
  }

  @Post("logout")
  @HttpCode(204)
  logout(@Headers("x-session") sid: string) {
    return this.auth.logout(sid);
  }
}

@Controller("profiles")
export class ProfileController {
  constructor(
    private readonly auth: AuthService,
    @Inject(USERS) private readonly users: UsersDb,
    @Inject(CACHE_MANAGER) private readonly cache: Cache,
  ) {}

  /** Cached by CacheInterceptor under its URL, in sharecache: every instance shares it. */
  @Get(":id")
  @UseInterceptors(CacheInterceptor)
  @CacheTTL(60_000)
  profile(@Param("id") id: string) {
    const u = this.users.get(id);
    if (!u) throw new HttpException({ error: "no such user" }, 404);
    return { id: u.id, name: u.name, servedBy: process.pid, at: Date.now() };
  }

  /** The owner renames themself; the cached response is dropped for every instance. */
  @Put(":id")
  @HttpCode(204)
  async rename(@Param("id") id: string, @Headers("x-session") sid: string, @Body() b: { name: string }) {
    const userId = await this.auth.whoami(sid);
    if (userId !== id) throw new HttpException({ error: "not yours" }, 403);
    this.users.get(id)!.name = b.name;
    await this.cache.del(`/profiles/${id}`);
  }
}

export interface AppOptions {
  url: string;
  token: string;
  users: UsersDb;
}

@Module({})
export class AppModule {
  static register(opts: AppOptions): DynamicModule {
    const sc = new Sharecache({ url: opts.url, token: opts.token });
    return {
      module: AppModule,
      imports: [
        CacheModule.register({
          stores: [new Keyv({ store: new KeyvSharecache({ client: sc, namespace: "profile" }), namespace: "http" })],
        }),
      ],
      controllers: [AuthController, ProfileController],
      providers: [AuthService, { provide: SHARECACHE, useValue: sc }, { provide: USERS, useValue: opts.users }],
    };
  }
}
