import { Arg, Authorized, Ctx, FieldResolver, Int, Query, Resolver, Root } from 'type-graphql';
import { ScreeningConnection } from '../schema/screening-connection.type';
import { ScreeningFilter } from '../schema/screening-filter.input';
import type { ApiContext } from '../server/operations';
import { screenings, SCREENINGS_DEFAULT_FIRST, totalCountOf } from '../server/screenings';

@Resolver(() => ScreeningConnection)
export class ScreeningsResolver {
  @Authorized('admin')
  @Query(() => ScreeningConnection, {
    description:
      'The audit log: every verdict the service gave, newest first, a page at a time (admin scope). `after` is the previous page’s `pageInfo.endCursor`.',
  })
  screenings(
    @Arg('filter', () => ScreeningFilter, { nullable: true }) filter: ScreeningFilter | null,
    @Arg('first', () => Int, {
      defaultValue: SCREENINGS_DEFAULT_FIRST,
      description: 'Records per page, in [1, 500].',
    })
    first: number,
    @Arg('after', () => String, { nullable: true }) after: string | null,
    @Ctx() ctx: ApiContext,
  ): Promise<ScreeningConnection> {
    return screenings(ctx, filter, first, after);
  }

  @FieldResolver(() => Int)
  totalCount(@Root() connection: ScreeningConnection, @Ctx() ctx: ApiContext): Promise<number> {
    return totalCountOf(ctx, connection);
  }
}
